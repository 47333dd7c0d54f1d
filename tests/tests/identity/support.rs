//! What the identity tests need from the harness, in one place: a namespace with the operator
//! running, kubectl, reads as JSON, and polls with a deadline that dump state when they time out.

use std::future::Future;

use demoweb_tests::harness::{KubectlOutput, TestEnv};
use serde_json::Value;

use crate::operator_support::{DEADLINE, Operator, install_crds, wait};

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

impl Crds {
    /// The manifest that installs this variant (on the emulator).
    pub fn manifest(self) -> &'static str {
        match self {
            Crds::Ours => concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../charts/demoweb-operator/files/aadpodidentity-crds.yaml"
            ),
            Crds::Upstream => concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/fixtures/upstream-aadpodidentity-crds.yaml"
            ),
        }
    }
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
    pub env: TestEnv,
    operator: Option<Operator>,
}

impl Site {
    /// Starts the environment with the chosen identity CRDs served, then the operator. The
    /// emulator gets them installed; a real cluster's are its own (cluster-wide objects that
    /// aad-pod-identity may own), never installed or replaced by a test: tests needing a variant
    /// are compiled as ignored unless `DEMOWEB_TEST_IDENTITY_CRDS` declares it served, and fail
    /// here if the declaration is wrong.
    pub async fn start(name: &str, crds: Crds) -> Site {
        let env = TestEnv::new(name).await;
        let mut site = Site {
            env,
            operator: None,
        };
        install_crds(&site.env).await;
        if site.env.is_emulator() {
            site.kubectl(&["apply", "-f", crds.manifest()])
                .await
                .expect_ok();
        } else {
            let served = site.served_variant().await;
            assert_eq!(
                served,
                Some(crds),
                "DEMOWEB_TEST_IDENTITY_CRDS says the cluster serves the {crds:?} identity CRDs; discovery says {served:?}"
            );
        }
        site.wait("the identity CRDs to be served", || async {
            (site.served_variant().await == Some(crds)).then_some(())
        })
        .await;
        // The default stalled requeue and identity-API poll: a reference that arrives late must
        // be acted on through the watches, well before either would look again.
        site.operator = Some(
            Operator::start(
                &site.env,
                &[
                    "--stalled-requeue-period=30s",
                    "--identity-api-poll-period=60s",
                ],
            )
            .await,
        );
        site
    }

    /// The identity CRD variant the cluster serves, from discovery (status subresource or not).
    pub async fn served_variant(&self) -> Option<Crds> {
        let out = self
            .kubectl(&["get", "--raw", "/apis/aadpodidentity.k8s.io/v1"])
            .await;
        if !out.success() || !out.stdout.contains("\"azureidentitybindings\"") {
            return None;
        }
        Some(if out.stdout.contains("azureidentities/status") {
            Crds::Ours
        } else {
            Crds::Upstream
        })
    }

    /// Polls `check` with a deadline; a timeout dumps the namespace and the operator's log.
    pub async fn wait<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        wait(&self.env, self.operator.as_ref(), what, DEADLINE, check).await
    }

    pub fn ns(&self) -> &str {
        &self.env.namespace
    }

    /// kubectl in the test's namespace.
    pub async fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        self.env.kubectl(args).await
    }

    /// `kubectl apply` of a YAML document (kubectl's default, strict, field validation).
    pub async fn apply(&self, yaml: &str) {
        self.env.apply_yaml(yaml).await.expect_ok();
    }

    /// `kubectl apply` with extra flags, e.g. `--validate=false`.
    pub async fn try_apply(&self, yaml: &str, extra: &[&str]) -> KubectlOutput {
        let mut args = vec!["apply", "-f", "-"];
        args.extend_from_slice(extra);
        self.env.kubectl_with_stdin(&args, Some(yaml)).await
    }

    pub async fn delete(&self, resource: &str, name: &str) {
        self.kubectl(&["delete", resource, name]).await.expect_ok();
    }

    /// The object as JSON, or None when it does not exist.
    pub async fn get(&self, resource: &str, name: &str) -> Option<Value> {
        let out = self
            .kubectl(&["get", resource, name, "-o", "json", "--ignore-not-found"])
            .await
            .expect_ok();
        if out.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&out).expect("kubectl prints JSON"))
        }
    }

    /// Events about one object.
    pub async fn events(&self, kind: &str, name: &str) -> Vec<SeenEvent> {
        let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
        let out = self
            .kubectl(&["get", "events", "--field-selector", &selector, "-o", "json"])
            .await
            .expect_ok();
        parse_events(&out)
    }

    /// Waits for an Event of `type_` and `reason` about the object.
    pub async fn event(&self, kind: &str, name: &str, type_: &str, reason: &str) -> SeenEvent {
        let what = format!("a {type_} {reason} Event on {kind} {name}");
        self.wait(&what, || async {
            self.events(kind, name)
                .await
                .into_iter()
                .find(|e| e.type_ == type_ && e.reason == reason)
        })
        .await
    }

    /// Waits for a Warning Event with `reason` about the object.
    pub async fn warning(&self, kind: &str, name: &str, reason: &str) -> SeenEvent {
        self.event(kind, name, "Warning", reason).await
    }

    /// How many times a `reason` Event was published about the object.
    pub async fn times_published(&self, kind: &str, name: &str, reason: &str) -> i64 {
        self.events(kind, name)
            .await
            .iter()
            .filter(|e| e.reason == reason)
            .map(|e| e.count)
            .sum()
    }

    /// The DemoWeb's condition of `type_`: (status, reason, message).
    pub async fn condition(&self, dw: &str, type_: &str) -> Option<(String, String, String)> {
        let obj = self.get("demoweb", dw).await?;
        let conditions = obj["status"]["conditions"].as_array()?.clone();
        conditions.iter().find(|c| c["type"] == type_).map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
    }

    /// Waits until the DemoWeb is Stalled for `reason`; returns the message.
    pub async fn stalled(&self, dw: &str, reason: &str) -> String {
        let what = format!("DemoWeb {dw} Stalled with reason {reason}");
        self.wait(&what, || async {
            self.condition(dw, "Stalled")
                .await
                .filter(|(status, r, _)| status == "True" && r == reason)
                .map(|(_, _, message)| message)
        })
        .await
    }

    /// Waits until the DemoWeb is no longer Stalled.
    pub async fn not_stalled(&self, dw: &str) {
        let what = format!("DemoWeb {dw} no longer Stalled");
        self.wait(&what, || async {
            self.condition(dw, "Stalled")
                .await
                .filter(|(status, _, _)| status == "False")
        })
        .await;
    }

    /// Waits for an object to exist and satisfy `check`.
    pub async fn object_where(
        &self,
        resource: &str,
        name: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.wait(what, || async {
            self.get(resource, name).await.filter(|obj| check(obj))
        })
        .await
    }

    /// Waits for an object to be gone.
    pub async fn gone(&self, resource: &str, name: &str) {
        let what = format!("{resource} {name} deleted");
        self.wait(&what, || async {
            self.get(resource, name).await.is_none().then_some(())
        })
        .await;
    }

    /// The Deployment's pod template once `check` accepts it.
    pub async fn template_where(
        &self,
        dw: &str,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        self.object_where("deployment", dw, what, |d| check(&d["spec"]["template"]))
            .await["spec"]["template"]
            .clone()
    }

    /// The Deployment's pod template now.
    pub async fn template(&self, dw: &str) -> Value {
        self.get("deployment", dw)
            .await
            .unwrap_or_else(|| panic!("Deployment {dw} missing"))["spec"]["template"]
            .clone()
    }

    /// Stops the operator and cleans up the namespace (real cluster) or the emulator.
    pub async fn finish(mut self) {
        // Dropping the operator kills it.
        drop(self.operator.take());
        self.env.finish().await;
    }
}

/// `kubectl get events -o json` output as [`SeenEvent`]s.
pub fn parse_events(json: &str) -> Vec<SeenEvent> {
    let list: Value = serde_json::from_str(json).expect("kubectl prints JSON");
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

/// The ServiceAccount the template's pods run under, None for the namespace's default. Read as
/// kube-apiserver reads a pod spec: `serviceAccountName`, else its deprecated alias `serviceAccount`.
pub fn service_account(template: &Value) -> Option<&str> {
    let field = |key: &str| template["spec"][key].as_str().filter(|sa| !sa.is_empty());
    field("serviceAccountName")
        .or_else(|| field("serviceAccount"))
        .filter(|sa| *sa != "default")
}
