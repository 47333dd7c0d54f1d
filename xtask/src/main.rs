//! Project tasks run through cargo aliases. `cargo image` builds the operator's OCI image without a
//! container engine: a statically linked release binary, then buildah (vfs storage, chroot isolation)
//! builds `Containerfile` with `BINARY=prebuilt` and writes an `oci-archive`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const IMAGE_NAME: &str = "demoweb-operator";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const SOURCE: &str = env!("CARGO_PKG_REPOSITORY");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("image") => image(&args[1..]),
        _ => Err("usage: cargo xtask image [--no-install]\n  image  build the operator image into target/image/demoweb-operator.oci.tar".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: this crate's parent directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn image(args: &[String]) -> Result<(), String> {
    let install = match args {
        [] => true,
        [flag] if flag == "--no-install" => false,
        other => {
            return Err(format!(
                "unexpected arguments {other:?}; usage: cargo image [--no-install]"
            ));
        }
    };
    let started = Instant::now();
    let root = workspace_root();
    let triple = host_triple()?;
    if !triple.contains("-linux-") {
        return Err(format!(
            "the image is a Linux image; this host is {triple}. Build on Linux, or with Docker: \
             docker build -f Containerfile -t {IMAGE_NAME} ."
        ));
    }
    let buildah = ensure_buildah(install)?;

    // 1. The static binary. RUSTFLAGS apply to the --target artefacts only, so build scripts and
    //    proc-macros stay ordinary host binaries.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str("-C target-feature=+crt-static");
    run(Command::new(&cargo)
        .current_dir(&root)
        .env("RUSTFLAGS", rustflags)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "demoweb-operator",
            "--target",
            &triple,
        ]))?;
    let built = target_dir(&root)
        .join(&triple)
        .join("release")
        .join(IMAGE_NAME);
    check_static(&built)?;
    let image_dir = target_dir(&root).join("image");
    std::fs::create_dir_all(&image_dir)
        .map_err(|e| format!("creating {}: {e}", image_dir.display()))?;
    // The Containerfile copies target/image/demoweb-operator from the build context (the workspace).
    if target_dir(&root) != root.join("target") {
        return Err(format!(
            "the Containerfile takes the binary from target/image/ in the workspace; unset CARGO_TARGET_DIR ({})",
            target_dir(&root).display()
        ));
    }
    let staged = image_dir.join(IMAGE_NAME);
    std::fs::copy(&built, &staged)
        .map_err(|e| format!("copying {} to {}: {e}", built.display(), staged.display()))?;

    // 2. The image, from the same Containerfile a Docker user builds, taking the prebuilt binary.
    let (version, revision) = version_and_revision(&root);
    if version != VERSION {
        eprintln!(
            "warning: the working tree has uncommitted changes; the image's version label says {version}"
        );
    }
    let tag = format!("localhost/{IMAGE_NAME}:{VERSION}");
    let storage = ["--storage-driver", "vfs"];
    run(Command::new(buildah)
        .current_dir(&root)
        .args(storage)
        .args([
            "build",
            "--isolation",
            "chroot",
            "--layers=false",
            "--file",
            "Containerfile",
        ])
        .args(["--build-arg", "BINARY=prebuilt"])
        .arg("--build-arg")
        .arg(format!("VERSION={version}"))
        .arg("--build-arg")
        .arg(format!("REVISION={revision}"))
        .arg("--build-arg")
        .arg(format!("SOURCE={SOURCE}"))
        .args(["--tag", &tag, "."]))?;

    // 3. The archive: gzip-compressed layers, as a registry would store them.
    let archive = image_dir.join(format!("{IMAGE_NAME}.oci.tar"));
    let _ = std::fs::remove_file(&archive);
    run(Command::new(buildah)
        .args(storage)
        .args(["push", "--quiet", "--compression-format", "gzip", &tag])
        .arg(format!("oci-archive:{}:{tag}", archive.display())))?;

    let size = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {tag} (version {version}, revision {revision})\n  archive {} ({:.1} MiB)\n  in {:.0}s\n\
         push it with: skopeo copy oci-archive:{} docker://<registry>/{IMAGE_NAME}:{VERSION}",
        archive.display(),
        size as f64 / (1024.0 * 1024.0),
        started.elapsed().as_secs_f64(),
        relative(&archive, &root).display(),
    );
    Ok(())
}

fn relative<'a>(path: &'a Path, root: &Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target"))
}

fn host_triple() -> Result<String, String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|e| format!("running rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV did not name the host target".to_owned())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// buildah, installed with apt-get when missing (as `.ci/run` installs its tools).
fn ensure_buildah(install: bool) -> Result<&'static str, String> {
    if on_path("buildah") {
        return Ok("buildah");
    }
    let hint = "install buildah (https://github.com/containers/buildah/blob/main/install.md: \
                `apt-get install buildah`, `dnf install buildah`, `zypper install buildah`, \
                `pacman -S buildah`) and run `cargo image` again";
    if !install {
        return Err(format!("buildah is not installed: {hint}"));
    }
    if !on_path("apt-get") {
        return Err(format!(
            "buildah is not installed and this machine has no apt-get: {hint}"
        ));
    }
    eprintln!("buildah is not installed: installing it with apt-get");
    let root = is_root();
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        run(&mut cmd)
    };
    apt(&["update", "-qq"])
        .and_then(|()| apt(&["install", "-y", "-qq", "buildah"]))
        .map_err(|e| format!("{e}\n{hint}"))?;
    Ok("buildah")
}

/// Whether this process runs as root: /proc/self belongs to the process's user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The version label (the crate version, `-dirty` for a tree with uncommitted changes) and the revision
/// (the commit, `-dirty` likewise; `unknown` outside a git checkout).
fn version_and_revision(root: &Path) -> (String, String) {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return (VERSION.to_owned(), "unknown".to_owned());
    };
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=normal"]).is_none_or(|s| !s.is_empty());
    if dirty {
        (format!("{VERSION}-dirty"), format!("{commit}-dirty"))
    } else {
        (VERSION.to_owned(), commit)
    }
}

/// A binary that names a program interpreter (the dynamic loader) cannot run on `scratch`.
fn check_static(binary: &Path) -> Result<(), String> {
    let bytes = std::fs::read(binary).map_err(|e| format!("reading {}: {e}", binary.display()))?;
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    // 64-bit little-endian ELF: every Linux target the image is built for.
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01") {
        return Err(format!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        ));
    }
    let phoff = u64_at(0x20).unwrap_or(0) as usize;
    let phentsize = u16_at(0x36).unwrap_or(0) as usize;
    let phnum = u16_at(0x38).unwrap_or(0) as usize;
    const PT_INTERP: u32 = 3;
    let interp = (0..phnum).any(|i| u32_at(phoff + i * phentsize) == Some(PT_INTERP));
    if interp {
        return Err(format!(
            "{} is dynamically linked; the image has no libc. Is RUSTFLAGS overriding -C target-feature=+crt-static?",
            binary.display()
        ));
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let shown = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!("+ {shown}");
    let status = cmd.status().map_err(|e| format!("running {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed ({status})"))
    }
}
