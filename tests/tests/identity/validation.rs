//! The identity validation controller alone (in-process, no DemoWeb controller): Warning Events
//! for invalid objects and deprecated keys, once per change, with either CRD variant.

use std::time::Duration;

use demoweb_operator::identity;
use demoweb_operator::identity::CrdVariant;
use demoweb_tests::harness::TestEnv;
use tokio::sync::oneshot;

use crate::support::{
    CLIENT, Crds, SEED, SUB, SeenEvent, binding_yaml, identity_yaml, parse_events,
};

const DEADLINE: Duration = Duration::from_secs(60);

struct Validating {
    env: TestEnv,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Validating {
    /// The emulator gets `crds` installed; a real cluster must serve them already (see
    /// `Site::start`).
    async fn start(name: &str, crds: Crds) -> Validating {
        let env = TestEnv::new(name).await;
        if env.is_emulator() {
            env.kubectl(&["apply", "-f", crds.manifest()])
                .await
                .expect_ok();
        }
        let want = match crds {
            Crds::Ours => CrdVariant::Ours,
            Crds::Upstream => CrdVariant::Upstream,
        };
        env.wait_for(
            &format!("the {crds:?} identity CRDs to be served"),
            DEADLINE,
            || async {
                let served = identity::crd_variant(&env.client, "AzureIdentityBinding")
                    .await
                    .ok()
                    .flatten();
                (served == Some(want)).then_some(())
            },
        )
        .await;
        let (tx, rx) = oneshot::channel::<()>();
        let client = env.client.clone();
        let namespace = env.namespace.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            identity::run(client, Some(namespace), Duration::from_secs(1), shutdown)
                .await
                .expect("identity controller runs");
        });
        Validating {
            env,
            stop: Some(tx),
            task: Some(task),
        }
    }

    async fn apply(&self, yaml: &str) {
        self.env.apply_yaml(yaml).await.expect_ok();
    }

    async fn events(&self, kind: &str, name: &str) -> Vec<SeenEvent> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let out = self
            .env
            .kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"])
            .await
            .expect_ok();
        parse_events(&out)
    }

    async fn event(&self, kind: &str, name: &str, type_: &str, reason: &str) -> SeenEvent {
        let what = format!("a {type_} {reason} Event on {kind} {name}");
        self.env
            .wait_for(&what, DEADLINE, || async {
                self.events(kind, name)
                    .await
                    .into_iter()
                    .find(|e| e.type_ == type_ && e.reason == reason)
            })
            .await
    }

    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("identity controller stops on shutdown")
                .expect("identity controller task");
        }
        self.env.finish().await;
    }
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn events_for_the_seed_objects_once_per_change() {
    let v = Validating::start("identity-events", Crds::Ours).await;
    v.apply(SEED).await;
    let invalid = v
        .event("AzureIdentity", "aks-pod-id", "Warning", "InvalidIdentity")
        .await;
    assert!(
        invalid.note.contains("\"SUBID\", which is not a GUID"),
        "{}",
        invalid.note
    );
    let deprecated = v
        .event("AzureIdentity", "aks-pod-id", "Warning", "DeprecatedKey")
        .await;
    assert!(
        deprecated
            .note
            .contains("spec.ClientID is deprecated: use spec.clientID"),
        "{}",
        deprecated.note
    );
    let deprecated = v
        .event(
            "AzureIdentityBinding",
            "aad-identity-binding",
            "Warning",
            "DeprecatedKey",
        )
        .await;
    assert!(
        deprecated
            .note
            .contains("spec.Selector is deprecated: use spec.selector"),
        "{}",
        deprecated.note
    );

    // Fixing the identity: a Normal Valid event; the untouched binding is not warned again.
    v.apply(&SEED.replace("SUBID", SUB)).await;
    v.event("AzureIdentity", "aks-pod-id", "Normal", "Valid")
        .await;
    let binding_warnings: i64 = v
        .events("AzureIdentityBinding", "aad-identity-binding")
        .await
        .iter()
        .filter(|e| e.reason == "DeprecatedKey")
        .map(|e| e.count)
        .sum();
    assert_eq!(binding_warnings, 1);
    v.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn binding_follows_its_identity() {
    let v = Validating::start("identity-binding-events", Crds::Ours).await;
    v.apply(&binding_yaml("demo-binding", "demo-pod-id", "demo"))
        .await;
    let missing = v
        .event(
            "AzureIdentityBinding",
            "demo-binding",
            "Warning",
            "IdentityNotFound",
        )
        .await;
    assert!(missing.note.contains("\"demo-pod-id\""), "{}", missing.note);
    v.apply(&identity_yaml("demo-pod-id", CLIENT, None)).await;
    v.event("AzureIdentityBinding", "demo-binding", "Normal", "Valid")
        .await;
    assert!(
        v.events("AzureIdentity", "demo-pod-id").await.is_empty(),
        "a valid identity gets no Events"
    );
    v.finish().await;
}

#[cfg_attr(
    all(real_cluster, not(identity_crds = "upstream")),
    ignore = "needs the cluster to serve upstream's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=upstream)"
)]
#[tokio::test]
async fn upstream_crds_prune_the_capitalised_keys() {
    let v = Validating::start("identity-upstream-events", Crds::Upstream).await;
    assert_eq!(
        identity::crd_variant(&v.env.client, "AzureIdentity")
            .await
            .expect("discovery"),
        Some(identity::CrdVariant::Upstream)
    );
    v.env
        .kubectl_with_stdin(
            &["apply", "--validate=false", "-f", "-"],
            Some(&SEED.replace("SUBID", SUB)),
        )
        .await
        .expect_ok();
    let invalid = v
        .event("AzureIdentity", "aks-pod-id", "Warning", "InvalidIdentity")
        .await;
    assert!(
        invalid
            .note
            .contains("spell ResourceID as resourceID, ClientID as clientID"),
        "{}",
        invalid.note
    );
    let invalid = v
        .event(
            "AzureIdentityBinding",
            "aad-identity-binding",
            "Warning",
            "InvalidIdentityBinding",
        )
        .await;
    assert!(
        invalid.note.contains("Selector as selector"),
        "{}",
        invalid.note
    );
    v.finish().await;
}

/// The identity objects under `examples/invalid/`: a `# expect:` file is refused by the API server
/// with that message; a `# expect-event: REASON: MESSAGE` file is one only the operator can judge
/// (aad-pod-identity's CRDs accept it), so it is stored and draws that Warning Event.
#[cfg_attr(
    all(real_cluster, not(identity_crds = "ours")),
    ignore = "needs the cluster to serve this project's identity CRDs (declare them with DEMOWEB_TEST_IDENTITY_CRDS=ours)"
)]
#[tokio::test]
async fn invalid_identity_examples_are_refused_or_reported_as_documented() {
    let v = Validating::start("identity-invalid-examples", Crds::Ours).await;
    let dir = demoweb_tests::operator::repo_root().join("examples/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/invalid/ is readable")
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    let mut checked = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let Some(kind) = ["AzureIdentity", "AzureIdentityBinding"]
            .into_iter()
            .find(|k| text.lines().any(|l| l == format!("kind: {k}")))
        else {
            continue;
        };
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .expect("a name");
        let file = path.to_str().expect("utf-8 path");
        checked += 1;
        if let Some(expect) = text.lines().find_map(|l| l.strip_prefix("# expect: ")) {
            let err = v.env.kubectl(&["apply", "-f", file]).await.expect_err();
            assert!(
                err.contains(expect),
                "{}: expected the API server to say {expect:?}, it said:\n{err}",
                path.display()
            );
            continue;
        }
        let (reason, message) = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect-event: ")?.split_once(": "))
            .unwrap_or_else(|| {
                panic!(
                    "{}: no `# expect:` or `# expect-event:` line",
                    path.display()
                )
            });
        v.env.kubectl(&["apply", "-f", file]).await.expect_ok();
        let event = v.event(kind, name, "Warning", reason).await;
        assert!(
            event.note.contains(message),
            "{}: expected the {reason} Event to say {message:?}, it said {:?}",
            path.display(),
            event.note
        );
    }
    assert!(checked >= 3, "identity examples checked: {checked}");
    v.finish().await;
}
