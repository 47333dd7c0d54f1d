//! The operator image that `cargo image` writes (target/image/demoweb-operator.oci.tar): its OCI layout,
//! manifest and config say what the chart relies on, and its entrypoint runs from the image's own root
//! filesystem as the image's own user — so a missing library, a wrong user or an unreadable binary fails
//! here, not in a user's cluster.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The compressed image (config and layers) must stay within this.
const BUDGET_BYTES: u64 = 15 * 1024 * 1024;

fn archive_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/image/demoweb-operator.oci.tar")
}

/// The archive `cargo image` wrote; these tests are ignored by default because they need it.
fn archive() -> PathBuf {
    let path = archive_path();
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo image` first",
        path.display()
    );
    path
}

/// An `oci-archive`: the OCI image layout (oci-layout, index.json, blobs/sha256/…) in one tar file.
struct OciArchive {
    files: HashMap<String, Vec<u8>>,
}

impl OciArchive {
    fn open(path: &Path) -> OciArchive {
        let file = std::fs::File::open(path).expect("open the image archive");
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        for entry in archive.entries().expect("the archive is a tar file") {
            let mut entry = entry.expect("tar entry");
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .expect("entry path")
                .to_string_lossy()
                .into_owned();
            let name = name.trim_start_matches("./").to_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read tar entry");
            files.insert(name, bytes);
        }
        OciArchive { files }
    }

    fn json(&self, name: &str) -> Value {
        let bytes = self
            .files
            .get(name)
            .unwrap_or_else(|| panic!("the archive has no {name}"));
        serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
    }

    /// A blob named by its descriptor, checked against the descriptor's digest and size.
    fn blob(&self, descriptor: &Value) -> &[u8] {
        let digest = descriptor["digest"].as_str().expect("descriptor digest");
        let hex = digest
            .strip_prefix("sha256:")
            .unwrap_or_else(|| panic!("unsupported digest algorithm in {digest}"));
        let bytes = self
            .files
            .get(&format!("blobs/sha256/{hex}"))
            .unwrap_or_else(|| panic!("the archive lacks blob {digest}"));
        let actual = format!("{:x}", Sha256::digest(bytes));
        assert_eq!(actual, hex, "blob {digest} does not match its digest");
        assert_eq!(
            Some(bytes.len() as u64),
            descriptor["size"].as_u64(),
            "blob {digest} does not have the size its descriptor says"
        );
        bytes
    }
}

/// The image as the archive describes it: manifest, config and the unpacked root filesystem.
struct Image {
    manifest: Value,
    config: Value,
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
}

fn load_image(path: &Path) -> Image {
    let archive = OciArchive::open(path);
    let layout = archive.json("oci-layout");
    assert_eq!(
        layout["imageLayoutVersion"], "1.0.0",
        "oci-layout: {layout}"
    );
    let index = archive.json("index.json");
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json lists manifests");
    assert_eq!(manifests.len(), 1, "one image in the archive: {index}");
    assert_eq!(
        manifests[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    let manifest: Value =
        serde_json::from_slice(archive.blob(&manifests[0])).expect("the manifest is JSON");
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.oci.image.config.v1+json",
        "{manifest}"
    );
    let config: Value =
        serde_json::from_slice(archive.blob(&manifest["config"])).expect("the config is JSON");

    let dir = tempfile::tempdir().expect("temp dir");
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("create rootfs");
    // A container's root directory is world-readable, whatever the temp dir's mode.
    set_mode(&rootfs, 0o755);
    let layers = manifest["layers"].as_array().expect("manifest layers");
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("config rootfs.diff_ids");
    assert_eq!(layers.len(), diff_ids.len(), "one diff_id per layer");
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        let bytes = archive.blob(layer);
        let tar_bytes = match layer["mediaType"].as_str() {
            Some("application/vnd.oci.image.layer.v1.tar+gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .expect("gunzip layer");
                out
            }
            Some("application/vnd.oci.image.layer.v1.tar") => bytes.to_vec(),
            other => panic!("unsupported layer media type {other:?}"),
        };
        assert_eq!(
            diff_id.as_str(),
            Some(format!("sha256:{:x}", Sha256::digest(&tar_bytes)).as_str()),
            "the uncompressed layer does not match the config's diff_id"
        );
        unpack_layer(&tar_bytes, &rootfs);
    }
    Image {
        manifest,
        config,
        _dir: dir,
        rootfs,
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Applies one layer as a container runtime does, whiteouts included, keeping modes (and owners,
/// when run as root).
fn unpack_layer(tar_bytes: &[u8], rootfs: &Path) {
    let mut archive = tar::Archive::new(tar_bytes);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(is_root());
    for entry in archive.entries().expect("layer is a tar file") {
        let mut entry = entry.expect("layer entry");
        let path = entry.path().expect("entry path").into_owned();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(hidden) = name.as_deref().and_then(|n| n.strip_prefix(".wh.")) {
            let parent = rootfs.join(path.parent().unwrap_or(Path::new("")));
            if hidden == ".wh..opq" {
                for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                    let _ = std::fs::remove_dir_all(child.path())
                        .or_else(|_| std::fs::remove_file(child.path()));
                }
            } else {
                let target = parent.join(hidden);
                let _ = std::fs::remove_dir_all(&target).or_else(|_| std::fs::remove_file(&target));
            }
            continue;
        }
        assert!(
            entry.unpack_in(rootfs).expect("unpack layer entry"),
            "layer entry {} escapes the root filesystem",
            path.display()
        );
    }
}

/// Whether the test runs as root: /proc/self belongs to the process's user.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// `uid:gid` from the config's User, which must be numeric: a `scratch` image has no /etc/passwd,
/// and Kubernetes' runAsNonRoot can only verify a numeric user.
fn numeric_user(config: &Value) -> (u32, u32) {
    let user = config["config"]["User"].as_str().unwrap_or_default();
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    match (uid.parse(), gid.parse()) {
        (Ok(uid), Ok(gid)) => (uid, gid),
        _ => panic!("the image's User must be numeric uid:gid, got {user:?}"),
    }
}

/// Runs the image's entrypoint with `args` inside its root filesystem as its user, with only the
/// image's environment: as root through chroot(8) with a real change of user; otherwise through a
/// user namespace that maps the image's user onto ours.
fn run_in_image(image: &Image, args: &[&str]) -> std::process::Output {
    let (uid, gid) = numeric_user(&image.config);
    let entrypoint: Vec<String> = image.config["config"]["Entrypoint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    assert!(!entrypoint.is_empty(), "the image has no entrypoint");
    let mut cmd = if is_root() {
        let mut cmd = Command::new("chroot");
        cmd.arg(format!("--userspec={uid}:{gid}"))
            .arg(&image.rootfs);
        cmd
    } else {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--user",
            &format!("--map-user={uid}"),
            &format!("--map-group={gid}"),
        ])
        .arg(format!("--root={}", image.rootfs.display()));
        cmd
    };
    cmd.env_clear();
    for var in image.config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some((k, v)) = var.as_str().and_then(|kv| kv.split_once('=')) {
            cmd.env(k, v);
        }
    }
    cmd.args(&entrypoint).args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

#[test]
#[ignore = "needs the image: `cargo image`, then `cargo test -p demoweb-tests --test image -- --ignored` (CI does)"]
fn the_image_archive_describes_the_operator() {
    let path = archive();
    let image = load_image(&path);
    let config = &image.config["config"];
    assert_eq!(image.config["os"], "linux");
    assert_eq!(numeric_user(&image.config), (65532, 65532));
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/demoweb-operator"])
    );
    assert_eq!(config["Cmd"], serde_json::json!(["run"]));

    let labels = &config["Labels"];
    let label = |key: &str| labels[key].as_str().unwrap_or_default().to_owned();
    let version = label("org.opencontainers.image.version");
    assert!(
        version == env!("CARGO_PKG_VERSION")
            || version == format!("{}-dirty", env!("CARGO_PKG_VERSION")),
        "version label {version:?} is not this workspace's version (rebuild with `cargo image`)"
    );
    let revision = label("org.opencontainers.image.revision");
    assert!(
        revision == "unknown" || revision.trim_end_matches("-dirty").len() == 40,
        "revision label {revision:?} is neither a commit nor `unknown`"
    );
    assert_eq!(
        version.ends_with("-dirty"),
        revision.ends_with("-dirty"),
        "version {version} and revision {revision} disagree on whether the tree was dirty"
    );
    assert_eq!(label("org.opencontainers.image.licenses"), "Apache-2.0");
    assert!(
        label("org.opencontainers.image.source").starts_with("https://"),
        "source label: {labels}"
    );

    let compressed: u64 = image.manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain([&image.manifest["config"]])
        .filter_map(|d| d["size"].as_u64())
        .sum();
    eprintln!("compressed image: {:.2} MiB", compressed as f64 / 1048576.0);
    assert!(
        compressed <= BUDGET_BYTES,
        "the compressed image is {compressed} bytes, over the budget of {BUDGET_BYTES}"
    );
}

#[test]
#[ignore = "needs the image: `cargo image`, then `cargo test -p demoweb-tests --test image -- --ignored` (CI does)"]
fn the_entrypoint_runs_from_the_image_as_its_user() {
    let path = archive();
    let image = load_image(&path);

    let out = run_in_image(&image, &["--version"]);
    assert!(
        out.status.success(),
        "`--version` failed in the image ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("demoweb-operator ", env!("CARGO_PKG_VERSION"))
    );

    let out = run_in_image(&image, &["crd"]);
    assert!(
        out.status.success(),
        "`crd` failed in the image ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = demoweb_operator::cli::crd_yaml("all").expect("CRDs serialise");
    assert!(
        String::from_utf8_lossy(&out.stdout) == expected,
        "the image prints other CRDs than this tree: rebuild it with `cargo image`"
    );
}
