//! What the identity tests need from the harness, in one place: a namespace with the operator
//! running, kubectl, reads as JSON, and polls with a deadline that dump state when they time out.

use std::time::Duration;

use demoweb_tests::harness::TestEnv;
use serde_json::Value;

/// How long the operator may take to converge before a test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// An Event as `kubectl get events` shows it.
#[derive(Clone, Debug)]
pub struct SeenEvent {
    pub type_: String,
    pub reason: String,
    pub note: String,
    pub count: i64,
}

/// Which aad-pod-identity CRDs the cluster serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crds {
    /// This project's: capitalised aliases, status subresource.
    Ours,
    /// tests/fixtures/upstream-aadpodidentity-crds.yaml: no aliases, no status subresource.
    Upstream,
}

pub const CLIENT: &str = "c35040d0-f73c-4c4e-a376-9bb1c5532fda";
pub const OTHER_CLIENT: &str = "2b1d6a3c-7e4f-4a8b-9c0d-1e2f3a4b5c6d";
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SUB: &str = "6f1c2a4e-0d3b-4e8f-9a51-2b7c8d9e0f11";

/// Seed 000's AzureIdentity and AzureIdentityBinding as the post prints them (indentation
/// restored), capitalised keys and SUBID placeholder included.
pub const SEED: &str = r#"
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentity
metadata:
  name: aks-pod-id
spec:
  type: 0
  ResourceID: /subscriptions/SUBID/resourcegroups/RESOURCEGROUP/providers/Microsoft.ManagedIdentity/userAssignedIdentities/demo-pod-id
  ClientID: c35040d0-f73c-4c4e-a376-9bb1c5532fda
---
apiVersion: "aadpodidentity.k8s.io/v1"
kind: AzureIdentityBinding
metadata:
  name: aad-identity-binding
spec:
  AzureIdentity: aks-pod-id
  Selector: myapp
"#;

/// An AzureIdentity with canonical keys.
pub fn identity_yaml(name: &str, client: &str, tenant: Option<&str>) -> String {
    let tenant = tenant
        .map(|t| format!("  tenantID: {t}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentity\nmetadata:\n  name: {name}\nspec:\n  type: 0\n  resourceID: /subscriptions/{SUB}/resourcegroups/demo-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}\n  clientID: {client}\n{tenant}"
    )
}

/// An AzureIdentityBinding with canonical keys.
pub fn binding_yaml(name: &str, identity: &str, selector: &str) -> String {
    format!(
        "apiVersion: aadpodidentity.k8s.io/v1\nkind: AzureIdentityBinding\nmetadata:\n  name: {name}\nspec:\n  azureIdentity: {identity}\n  selector: {selector}\n"
    )
}

/// A DemoWeb (the seed's site) using `binding` in `mode`.
pub fn demoweb_yaml(name: &str, binding: &str, mode: &str) -> String {
    format!(
        "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  gitrepo: https://github.com/gbaeke/static-web.git\n  identity:\n    binding: {binding}\n    mode: {mode}\n"
    )
}

/// A namespace on the emulator (or `DEMOWEB_TEST_KUBECONFIG`'s cluster) with the operator running.
pub struct Site {
    env: TestEnv,
}

impl Site {
    /// Starts the environment, installs the chosen identity CRDs, then starts the operator.
    pub async fn start(name: &str, crds: Crds) -> Site {
        let env = TestEnv::new(name).await;
        let site = Site { env };
        match crds {
            Crds::Ours => site.apply_cluster_file(&operator_crds()),
            Crds::Upstream => site.apply_cluster_file(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/upstream-aadpodidentity-crds.yaml"
            )),
        }
        site.wait_served();
        site.env.start_operator().await;
        site
    }

    pub fn ns(&self) -> &str {
        self.env.namespace()
    }

    /// kubectl in the test's namespace; Err carries stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        self.env.kubectl(args)
    }

    /// `kubectl apply` of a YAML document (default, i.e. strict, field validation).
    pub fn apply(&self, yaml: &str) {
        if let Err(err) = self.try_apply(yaml, &[]) {
            panic!("kubectl apply failed: {err}\n{yaml}");
        }
    }

    pub fn try_apply(&self, yaml: &str, extra: &[&str]) -> Result<String, String> {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), yaml).expect("write manifest");
        let path = file.path().to_string_lossy().into_owned();
        let mut args = vec!["apply", "-f", path.as_str()];
        args.extend_from_slice(extra);
        self.kubectl(&args)
    }

    fn apply_cluster_file(&self, path: &str) {
        // CRDs are cluster-scoped; on a shared real cluster they may already be there.
        if let Err(err) = self.kubectl(&["apply", "--server-side", "--force-conflicts", "-f", path]) {
            panic!("installing {path}: {err}");
        }
    }

    fn wait_served(&self) {
        for _ in 0..100 {
            if self
                .kubectl(&["get", "azureidentities.aadpodidentity.k8s.io,azureidentitybindings.aadpodidentity.k8s.io"])
                .is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the identity CRDs were not served in time");
    }

    pub fn delete(&self, resource: &str, name: &str) {
        if let Err(err) = self.kubectl(&["delete", resource, name, "--wait=true"]) {
            panic!("kubectl delete {resource} {name}: {err}");
        }
    }

    /// The object as JSON, or None when it does not exist.
    pub fn get(&self, resource: &str, name: &str) -> Option<Value> {
        let out = self
            .kubectl(&["get", resource, name, "-o", "json", "--ignore-not-found"])
            .unwrap_or_else(|err| panic!("kubectl get {resource} {name}: {err}"));
        if out.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&out).expect("kubectl prints JSON"))
        }
    }

    /// Polls `check` until it returns Some, failing after the deadline with `what` and a dump.
    pub async fn eventually<T>(&self, what: &str, mut check: impl FnMut(&Site) -> Option<T>) -> T {
        let start = std::time::Instant::now();
        loop {
            if let Some(found) = check(self) {
                return found;
            }
            if start.elapsed() > DEADLINE {
                let dump = self
                    .kubectl(&["get", "demowebs,deployments,serviceaccounts,azureidentities,azureidentitybindings,events", "-o", "yaml"])
                    .unwrap_or_else(|e| e);
                panic!("timed out waiting for {what}\n--- namespace {} ---\n{dump}", self.ns());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Events about one object, oldest first.
    pub fn events(&self, kind: &str, name: &str) -> Vec<SeenEvent> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let out = self
            .kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"])
            .unwrap_or_else(|err| panic!("kubectl get events: {err}"));
        let list: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
        list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| SeenEvent {
                type_: e["type"].as_str().unwrap_or_default().to_owned(),
                reason: e["reason"].as_str().unwrap_or_default().to_owned(),
                note: e["message"]
                    .as_str()
                    .or(e["note"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
                // A repeated event becomes a series on the same object instead of a new one.
                count: e["count"]
                    .as_i64()
                    .or(e["series"]["count"].as_i64())
                    .unwrap_or(1),
            })
            .collect()
    }

    /// The first Warning Event about the object with `reason`, waiting for it.
    pub async fn warning(&self, kind: &str, name: &str, reason: &str) -> SeenEvent {
        self.eventually(&format!("a Warning {reason} Event on {kind} {name}"), |s| {
            s.events(kind, name)
                .into_iter()
                .find(|e| e.type_ == "Warning" && e.reason == reason)
        })
        .await
    }

    /// How many times a `reason` Event was published about the object.
    pub fn times_published(&self, kind: &str, name: &str, reason: &str) -> i64 {
        self.events(kind, name)
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.count)
            .sum()
    }

    /// The DemoWeb's condition of `type_`: (status, reason, message).
    pub fn condition(&self, dw: &str, type_: &str) -> Option<(String, String, String)> {
        let obj = self.get("demoweb", dw)?;
        let conditions = obj["status"]["conditions"].as_array()?.clone();
        conditions.iter().find(|c| c["type"] == type_).map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
    }

    /// Waits until the DemoWeb is Stalled for `reason` and returns the message.
    pub async fn stalled(&self, dw: &str, reason: &str) -> String {
        self.eventually(&format!("DemoWeb {dw} Stalled with reason {reason}"), |s| {
            s.condition(dw, "Stalled")
                .filter(|(status, r, _)| status == "True" && r == reason)
                .map(|(_, _, message)| message)
        })
        .await
    }

    /// The Deployment's pod template once `check` accepts it.
    pub async fn template_where(&self, dw: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.eventually(what, |s| {
            let template = s.get("deployment", dw)?["spec"]["template"].clone();
            check(&template).then_some(template)
        })
        .await
    }
}

/// The pod template's label `key`.
pub fn label<'a>(template: &'a Value, key: &str) -> Option<&'a str> {
    template["metadata"]["labels"][key].as_str()
}

/// The value of env var `name` in any container of the pod template.
pub fn env<'a>(template: &'a Value, name: &str) -> Option<&'a str> {
    template["spec"]["containers"]
        .as_array()?
        .iter()
        .flat_map(|c| c["env"].as_array().into_iter().flatten())
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
}

/// The pod template's ServiceAccount, None for the namespace's default.
pub fn service_account(template: &Value) -> Option<&str> {
    template["spec"]["serviceAccountName"]
        .as_str()
        .filter(|sa| *sa != "default")
}

/// Path of this project's CRDs as the operator prints them.
fn operator_crds() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/demoweb-operator/files/aadpodidentity-crds.yaml"
    )
    .to_owned()
}
