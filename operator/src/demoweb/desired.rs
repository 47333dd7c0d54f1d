//! Pure builders for a DemoWeb's children: deterministic names, labels, owner reference; no I/O.

use std::collections::{BTreeMap, BTreeSet};

use demoweb_crd::conditions::reason;

use demoweb_crd::DemoWeb;
use demoweb_crd::demoweb::DEFAULT_CPU_TARGET;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec,
    TopologySpreadConstraint, Volume, VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::status::UserError;
use crate::identity::PodIdentity;

/// git-sync v4, pinned: the init container and the optional sidecar.
pub const GIT_SYNC_IMAGE: &str = "registry.k8s.io/git-sync/git-sync:v4.4.2";
/// The default web server: nginx running as uid 101, listening on an unprivileged port.
pub const DEFAULT_WEB_IMAGE: &str = "nginxinc/nginx-unprivileged:1.29.4-alpine";

/// Port nginx serves the site on.
pub const WEB_PORT: i32 = 8080;
/// Port of nginx's health endpoint, kept apart so probes do not depend on the site's content.
pub const HEALTH_PORT: i32 = 8081;
pub const HEALTH_PATH: &str = "/healthz";
/// Name of the Service's and the container's port.
pub const PORT_NAME: &str = "http";

/// CPU the web container requests when the site autoscales and the user set no CPU in
/// `resources`: the autoscaler measures utilisation against the request, so one must exist.
/// Serving static files costs little; 50m lets a node hold many sites.
pub const DEFAULT_CPU_REQUEST: &str = "50m";
/// How long nginx keeps serving after it was told to stop, so that the endpoint controller,
/// kube-proxy and the ingress controllers stop sending it traffic first.
pub const PRE_STOP_SECONDS: i64 = 10;
/// Covers the pause above plus nginx's graceful quit for the requests still in flight.
pub const TERMINATION_GRACE_SECONDS: i64 = 30;
/// Topology keys the pods spread over, most specific first.
pub const SPREAD_KEYS: [&str; 2] = ["kubernetes.io/hostname", "topology.kubernetes.io/zone"];

const GIT_ROOT: &str = "/git";
const GIT_LINK: &str = "current";
const GIT_SECRET_DIR: &str = "/etc/git-secret";
const NGINX_CONFIG_DIR: &str = "/etc/nginx/demoweb";
const NGINX_CONFIG_FILE: &str = "nginx.conf";
const NGINX_UID: i64 = 101;
const GIT_SYNC_UID: i64 = 65533;

/// Annotation on the pod template: the hash of everything that must roll the pods when it changes.
pub const CONFIG_HASH_ANNOTATION: &str = "demoweb.baeke.info/config-hash";
/// Annotation on every child: the hash of the desired object last applied (see `apply.rs`).
pub const APPLIED_HASH_ANNOTATION: &str = "demoweb.baeke.info/applied-hash";

pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
pub const APP_NAME: &str = "demoweb";
pub const MANAGER: &str = "demoweb-operator";

/// Child names, derived from the DemoWeb's name.
pub fn deployment_name(dw: &str) -> String {
    dw.to_owned()
}
pub fn config_map_name(dw: &str) -> String {
    format!("{dw}-nginx")
}
pub fn service_name(dw: &str) -> String {
    dw.to_owned()
}
pub fn ingress_name(dw: &str) -> String {
    dw.to_owned()
}
pub fn disruption_budget_name(dw: &str) -> String {
    dw.to_owned()
}
pub fn autoscaler_name(dw: &str) -> String {
    dw.to_owned()
}
pub fn allowlist_name(dw: &str) -> String {
    format!("{dw}-allowlist")
}
/// The Deployment the Kopf operator of the seed created; deleted when this DemoWeb controls it.
pub fn legacy_deployment_name(dw: &str) -> String {
    format!("{dw}-deployment")
}

/// Labels that select a DemoWeb's pods. Immutable once the Deployment exists, so they carry no
/// component or version.
pub fn selector_labels(dw: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_owned(), APP_NAME.to_owned()),
        (LABEL_INSTANCE.to_owned(), dw.to_owned()),
    ])
}

/// The one labels helper: every child carries these.
pub fn labels(dw: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(dw);
    labels.insert(LABEL_MANAGED_BY.to_owned(), MANAGER.to_owned());
    labels.insert(LABEL_COMPONENT.to_owned(), component.to_owned());
    labels
}

/// Label selector for the watches on children: only what this operator manages.
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER}")
}

/// Metadata of a child: name, namespace, labels and the controller owner reference.
pub fn child_meta(dw: &DemoWeb, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: dw.namespace(),
        labels: Some(labels(&dw.name_any(), component)),
        owner_references: dw.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// How git-sync authenticates, decided from the repository URL and the credentials Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitAuth {
    /// A public repository.
    None,
    /// `username` and `password` keys of the Secret.
    Https { secret: String },
    /// `ssh` key of the Secret, and `known_hosts` when it has one.
    Ssh { secret: String, known_hosts: bool },
}

/// Whether a repository URL is reached over ssh.
pub fn is_ssh_repo(repo: &str) -> bool {
    repo.starts_with("ssh://") || repo.starts_with("git@")
}

/// How git-sync authenticates, checked against the keys the credentials Secret really has.
/// `secret_keys` is `None` when the Secret does not exist.
pub fn git_auth(
    dw: &DemoWeb,
    secret_keys: Option<&BTreeSet<String>>,
) -> Result<GitAuth, UserError> {
    let Some(credentials) = &dw.spec.credentials else {
        return Ok(GitAuth::None);
    };
    let secret = credentials.secret_name.clone();
    let not_found = |message: String| UserError {
        reason: reason::CREDENTIALS_NOT_FOUND,
        message,
    };
    let Some(keys) = secret_keys else {
        return Err(not_found(format!(
            "credentials Secret {secret:?} not found in namespace {:?}",
            dw.namespace().unwrap_or_default()
        )));
    };
    let needed: &[&str] = if is_ssh_repo(&dw.spec.gitrepo) {
        &["ssh"]
    } else {
        &["username", "password"]
    };
    let missing: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|k| !keys.contains(*k))
        .collect();
    if !missing.is_empty() {
        return Err(not_found(format!(
            "credentials Secret {secret:?} has no key {} (needed for {})",
            missing.join(" or "),
            if is_ssh_repo(&dw.spec.gitrepo) {
                "an ssh repository"
            } else {
                "an https repository"
            }
        )));
    }
    Ok(if is_ssh_repo(&dw.spec.gitrepo) {
        GitAuth::Ssh {
            secret,
            known_hosts: keys.contains("known_hosts"),
        }
    } else {
        GitAuth::Https { secret }
    })
}

/// The nginx configuration: the site at `/` (and at the ingress path, which ingress controllers
/// pass through unchanged), plus a health endpoint on its own port.
pub fn nginx_config(dw: &DemoWeb) -> String {
    let root = content_root(dw);
    let mut prefix_block = String::new();
    if let Some(ingress) = &dw.spec.ingress {
        let prefix = ingress.path.trim_end_matches('/');
        if !prefix.is_empty() {
            prefix_block = format!(
                "    location = {prefix} {{\n      return 301 {prefix}/;\n    }}\n    location ^~ {prefix}/ {{\n      rewrite ^{prefix}/(.*)$ /$1 last;\n    }}\n"
            );
        }
    }
    format!(
        "# Generated by demoweb-operator for DemoWeb {name}; edits are overwritten.
worker_processes 1;
pid /tmp/nginx.pid;
error_log /dev/stderr warn;
events {{
  worker_connections 1024;
}}
http {{
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /dev/stdout;
  server_tokens off;
  sendfile on;
  client_body_temp_path /tmp/client_temp;
  proxy_temp_path /tmp/proxy_temp;
  fastcgi_temp_path /tmp/fastcgi_temp;
  uwsgi_temp_path /tmp/uwsgi_temp;
  scgi_temp_path /tmp/scgi_temp;
  server {{
    listen {WEB_PORT};
    absolute_redirect off;
    root {root};
    index index.html index.htm;
{prefix_block}    location / {{
      try_files $uri $uri/ =404;
    }}
  }}
  server {{
    listen {HEALTH_PORT};
    location = {HEALTH_PATH} {{
      access_log off;
      default_type text/plain;
      return 200 \"ok\\n\";
    }}
  }}
}}
",
        name = dw.name_any(),
    )
}

/// Directory nginx serves: git-sync's link, plus `spec.path`.
pub fn content_root(dw: &DemoWeb) -> String {
    let sub = dw
        .spec
        .path
        .as_deref()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty() && *p != ".");
    match sub {
        Some(sub) => format!("{GIT_ROOT}/{GIT_LINK}/{sub}"),
        None => format!("{GIT_ROOT}/{GIT_LINK}"),
    }
}

pub fn desired_config_map(dw: &DemoWeb) -> ConfigMap {
    ConfigMap {
        metadata: child_meta(dw, config_map_name(&dw.name_any()), "config"),
        data: Some(BTreeMap::from([(
            NGINX_CONFIG_FILE.to_owned(),
            nginx_config(dw),
        )])),
        ..ConfigMap::default()
    }
}

/// First 16 hex digits of the SHA-256 of `text`: short enough for an annotation, long enough to
/// never collide between two versions of one object.
pub fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!("{digest:x}")[..16].to_owned()
}

fn git_sync_args(dw: &DemoWeb, auth: &GitAuth, one_time: bool) -> Vec<String> {
    let mut args = vec![
        format!("--repo={}", dw.spec.gitrepo),
        format!("--root={GIT_ROOT}"),
        format!("--link={GIT_LINK}"),
        "--depth=1".to_owned(),
    ];
    if let Some(git_ref) = &dw.spec.git_ref {
        args.push(format!("--ref={git_ref}"));
    }
    match auth {
        GitAuth::None => {}
        GitAuth::Https { .. } => {
            args.push(format!("--password-file={GIT_SECRET_DIR}/password"));
        }
        GitAuth::Ssh { known_hosts, .. } => {
            args.push(format!("--ssh-key-file={GIT_SECRET_DIR}/ssh"));
            if *known_hosts {
                args.push(format!(
                    "--ssh-known-hosts-file={GIT_SECRET_DIR}/known_hosts"
                ));
            } else {
                args.push("--ssh-known-hosts=false".to_owned());
            }
        }
    }
    match (&dw.spec.sync, one_time) {
        (_, true) => args.push("--one-time".to_owned()),
        (Some(sync), false) => {
            args.push(format!("--period={}", sync.period));
            // A transient fetch error must not kill the sidecar (and with it the pod's readiness).
            args.push("--max-failures=-1".to_owned());
        }
        (None, false) => {}
    }
    args
}

fn restricted(uid: i64) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn git_sync_container(dw: &DemoWeb, auth: &GitAuth, one_time: bool) -> Container {
    let mut mounts = vec![
        mount("content", GIT_ROOT, false),
        mount("git-tmp", "/tmp", false),
    ];
    let mut env = vec![EnvVar {
        name: "HOME".to_owned(),
        value: Some("/tmp".to_owned()),
        ..EnvVar::default()
    }];
    match auth {
        GitAuth::None => {}
        GitAuth::Https { secret } => {
            mounts.push(mount("git-secret", GIT_SECRET_DIR, true));
            env.push(EnvVar {
                name: "GITSYNC_USERNAME".to_owned(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: "username".to_owned(),
                        ..SecretKeySelector::default()
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
        GitAuth::Ssh { .. } => mounts.push(mount("git-secret", GIT_SECRET_DIR, true)),
    }
    Container {
        name: if one_time { "git-clone" } else { "git-sync" }.to_owned(),
        image: Some(GIT_SYNC_IMAGE.to_owned()),
        args: Some(git_sync_args(dw, auth, one_time)),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(restricted(GIT_SYNC_UID)),
        ..Container::default()
    }
}

fn http_probe(period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.to_owned()),
            port: IntOrString::String("health".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

/// The user's `resources`; with autoscaling, plus a CPU request when the user set no CPU at all
/// (a CPU limit alone makes the API server default the request to it).
fn web_resources(dw: &DemoWeb) -> Option<ResourceRequirements> {
    let user = dw.spec.resources.clone();
    if dw.spec.autoscaling.is_none() {
        return user;
    }
    let mut resources = user.unwrap_or_default();
    let has_cpu =
        |m: &Option<BTreeMap<String, Quantity>>| m.as_ref().is_some_and(|m| m.contains_key("cpu"));
    if !has_cpu(&resources.requests) && !has_cpu(&resources.limits) {
        resources
            .requests
            .get_or_insert_with(BTreeMap::new)
            .insert("cpu".to_owned(), Quantity(DEFAULT_CPU_REQUEST.to_owned()));
    }
    Some(resources)
}

/// Whether the site keeps 2 or more pods (with autoscaling: at least `minReplicas`).
pub fn is_replicated(dw: &DemoWeb) -> bool {
    match &dw.spec.autoscaling {
        Some(a) => a.min_replicas >= 2,
        None => dw.spec.replicas >= 2,
    }
}

/// Spread the pods over nodes, then zones; a preference, so a small cluster still runs them.
fn topology_spread(name: &str) -> Vec<TopologySpreadConstraint> {
    SPREAD_KEYS
        .iter()
        .map(|key| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: (*key).to_owned(),
            when_unsatisfiable: "ScheduleAnyway".to_owned(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(name)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        })
        .collect()
}

fn web_container(dw: &DemoWeb, identity_env: &[EnvVar]) -> Container {
    Container {
        name: "web".to_owned(),
        image: Some(
            dw.spec
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_WEB_IMAGE.to_owned()),
        ),
        // Our own nginx.conf: skips the image's entrypoint scripts, which want a writable /etc/nginx.
        command: Some(vec![
            "nginx".to_owned(),
            "-c".to_owned(),
            format!("{NGINX_CONFIG_DIR}/{NGINX_CONFIG_FILE}"),
            "-g".to_owned(),
            "daemon off;".to_owned(),
        ]),
        ports: Some(vec![
            ContainerPort {
                name: Some(PORT_NAME.to_owned()),
                container_port: WEB_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("health".to_owned()),
                container_port: HEALTH_PORT,
                ..ContainerPort::default()
            },
        ]),
        env: (!identity_env.is_empty()).then(|| identity_env.to_vec()),
        readiness_probe: Some(http_probe(5)),
        liveness_probe: Some(http_probe(10)),
        // On deletion the pod leaves the Service's endpoints while its containers get the stop
        // signal; proxies and ingress controllers learn of it a few seconds later. nginx keeps
        // serving meanwhile, then the image's STOPSIGNAL (SIGQUIT) lets it finish what is in
        // flight. The pause is an exec of `sleep`, which the default nginx-unprivileged image
        // (Alpine, busybox) ships; the native `sleep` handler would also work for images without
        // a shell, but it is on by default only from Kubernetes 1.30 (beta; GA in 1.34) and we
        // support 1.27. With an image that lacks `sleep` the hook fails, which the kubelet
        // reports as an Event and then stops the container as if there were no hook.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec!["sleep".to_owned(), PRE_STOP_SECONDS.to_string()]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        resources: web_resources(dw),
        volume_mounts: Some(vec![
            mount("content", GIT_ROOT, true),
            mount("nginx-config", NGINX_CONFIG_DIR, true),
            mount("nginx-tmp", "/tmp", false),
        ]),
        security_context: Some(restricted(NGINX_UID)),
        ..Container::default()
    }
}

/// The Deployment: git-sync clones into an emptyDir before nginx starts; with `sync.period` a
/// sidecar keeps it fresh.
pub fn desired_deployment(dw: &DemoWeb, auth: &GitAuth, identity: &PodIdentity) -> Deployment {
    let name = dw.name_any();
    let config_hash = short_hash(&nginx_config(dw));

    let mut pod_labels = labels(&name, "web");
    for (k, v) in &identity.labels {
        pod_labels.insert(k.clone(), v.clone());
    }

    let mut volumes = vec![
        empty_dir("content"),
        empty_dir("git-tmp"),
        empty_dir("nginx-tmp"),
        Volume {
            name: "nginx-config".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(&name),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if let GitAuth::Https { secret } | GitAuth::Ssh { secret, .. } = auth {
        volumes.push(Volume {
            name: "git-secret".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                // Group-readable: the files belong to root and the pod's fsGroup, git-sync runs in it.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let mut containers = vec![web_container(dw, &identity.env)];
    if dw.spec.sync.is_some() {
        containers.push(git_sync_container(dw, auth, false));
    }

    Deployment {
        metadata: child_meta(dw, deployment_name(&name), "web"),
        spec: Some(DeploymentSpec {
            // With autoscaling the count is the autoscaler's: leaving the field out of our apply
            // gives up our ownership of it (see `mod.rs` for the hand-over).
            replicas: dw.spec.autoscaling.is_none().then_some(dw.spec.replicas),
            // A new pod is ready before an old one goes, whatever the replica count; the
            // strategy and the template do not depend on the count, so scaling never rolls pods.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                }),
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(
                        CONFIG_HASH_ANNOTATION.to_owned(),
                        config_hash,
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    // Stated in every mode; `pod_service_account` says why leaving it out strands pods.
                    service_account_name: Some(identity.pod_service_account()),
                    automount_service_account_token: Some(identity.service_account_name.is_some()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        fs_group: Some(GIT_SYNC_UID),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            ..SeccompProfile::default()
                        }),
                        ..PodSecurityContext::default()
                    }),
                    init_containers: Some(vec![git_sync_container(dw, auth, true)]),
                    containers,
                    termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
                    topology_spread_constraints: Some(topology_spread(&name)),
                    volumes: Some(volumes),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

/// At most one pod of a replicated site may be evicted at a time. `maxUnavailable` (not
/// `minAvailable`) so that the budget never blocks every eviction, whatever the replica count.
/// `None` for a site of fewer than 2 pods: a budget there would either block drains or mean
/// nothing.
pub fn desired_disruption_budget(dw: &DemoWeb) -> Option<PodDisruptionBudget> {
    if !is_replicated(dw) {
        return None;
    }
    let name = dw.name_any();
    Some(PodDisruptionBudget {
        metadata: child_meta(dw, disruption_budget_name(&name), "web"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// The HorizontalPodAutoscaler of an autoscaled site, scaling the Deployment on CPU.
pub fn desired_autoscaler(dw: &DemoWeb) -> Option<HorizontalPodAutoscaler> {
    let a = dw.spec.autoscaling.as_ref()?;
    let name = dw.name_any();
    Some(HorizontalPodAutoscaler {
        metadata: child_meta(dw, autoscaler_name(&name), "web"),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".to_owned()),
                kind: "Deployment".to_owned(),
                name: deployment_name(&name),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".to_owned(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".to_owned(),
                    target: MetricTarget {
                        type_: "Utilization".to_owned(),
                        average_utilization: Some(
                            a.target_cpu_utilization_percentage
                                .unwrap_or(DEFAULT_CPU_TARGET),
                        ),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

pub fn desired_service(dw: &DemoWeb) -> Service {
    let name = dw.name_any();
    Service {
        metadata: child_meta(dw, service_name(&name), "web"),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector_labels(&name)),
            ports: Some(vec![ServicePort {
                name: Some(PORT_NAME.to_owned()),
                port: 80,
                target_port: Some(IntOrString::String(PORT_NAME.to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use demoweb_crd::demoweb::{AutoscalingSpec, CredentialsSpec, IngressSpec, SyncSpec};
    use demoweb_crd::{DemoWeb, DemoWebSpec};

    /// The seed's DemoWeb, as the API server returns it (with a uid).
    pub(crate) fn seed() -> DemoWeb {
        let mut dw: DemoWeb = demoweb_crd::yaml::from_str(
            "apiVersion: baeke.info/v1\nkind: DemoWeb\nmetadata:\n  name: demoweb1\n  namespace: default\n  uid: 0b0b0b0b-0000-0000-0000-000000000001\n  generation: 1\nspec:\n  replicas: 2\n  gitrepo: \"https://github.com/gbaeke/static-web.git\"\n",
        )
        .expect("seed parses");
        dw.metadata.generation = Some(1);
        dw
    }

    fn with(f: impl FnOnce(&mut DemoWebSpec)) -> DemoWeb {
        let mut dw = seed();
        f(&mut dw.spec);
        dw
    }

    fn container<'a>(d: &'a Deployment, name: &str) -> Option<&'a Container> {
        let pod = d.spec.as_ref()?.template.spec.as_ref()?;
        pod.containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
            .find(|c| c.name == name)
    }

    fn args(d: &Deployment, name: &str) -> Vec<String> {
        container(d, name)
            .and_then(|c| c.args.clone())
            .unwrap_or_default()
    }

    #[test]
    fn seed_deployment_shape() {
        let dw = seed();
        let d = desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
        assert_eq!(d.metadata.name.as_deref(), Some("demoweb1"));
        assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
        let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("DemoWeb", "demoweb1", Some(true))
        );
        let labels = d.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], "demoweb-operator");
        assert_eq!(labels[LABEL_INSTANCE], "demoweb1");
        let spec = d.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.selector.match_labels.as_ref(),
            Some(&selector_labels("demoweb1"))
        );
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(pod.containers.len(), 1, "no sidecar without sync.period");
        let init = args(&d, "git-clone");
        assert!(init.contains(&"--repo=https://github.com/gbaeke/static-web.git".to_owned()));
        assert!(init.contains(&"--one-time".to_owned()));
        assert!(init.contains(&"--depth=1".to_owned()));
        assert!(init.contains(&"--link=current".to_owned()));
        assert!(!init.iter().any(|a| a.starts_with("--ref")));
        let web = container(&d, "web").unwrap();
        assert_eq!(web.image.as_deref(), Some(DEFAULT_WEB_IMAGE));
        assert!(web.readiness_probe.is_some() && web.liveness_probe.is_some());
        let pod_sc = pod.security_context.as_ref().unwrap();
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        assert_eq!(
            pod_sc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        for c in pod
            .containers
            .iter()
            .chain(pod.init_containers.iter().flatten())
        {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop,
                Some(vec!["ALL".to_owned()])
            );
        }
        let annotations = spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref();
        assert!(annotations.unwrap().contains_key(CONFIG_HASH_ANNOTATION));
    }

    #[test]
    fn git_sync_arguments_follow_the_spec() {
        struct Case {
            name: &'static str,
            dw: DemoWeb,
            auth: GitAuth,
            container: &'static str,
            present: &'static [&'static str],
            absent: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "ref is passed",
                dw: with(|s| s.git_ref = Some("v1.2.3".into())),
                auth: GitAuth::None,
                container: "git-clone",
                present: &["--ref=v1.2.3"],
                absent: &["--period=60s"],
            },
            Case {
                name: "sync.period adds a sidecar",
                dw: with(|s| {
                    s.sync = Some(SyncSpec {
                        period: "60s".into(),
                    })
                }),
                auth: GitAuth::None,
                container: "git-sync",
                present: &["--period=60s", "--max-failures=-1"],
                absent: &["--one-time"],
            },
            Case {
                name: "https credentials use a password file",
                dw: with(|s| {
                    s.credentials = Some(CredentialsSpec {
                        secret_name: "creds".into(),
                    })
                }),
                auth: GitAuth::Https {
                    secret: "creds".into(),
                },
                container: "git-clone",
                present: &["--password-file=/etc/git-secret/password"],
                absent: &["--ssh-key-file=/etc/git-secret/ssh"],
            },
            Case {
                name: "ssh with known_hosts",
                dw: with(|s| s.gitrepo = "git@github.com:me/site.git".into()),
                auth: GitAuth::Ssh {
                    secret: "creds".into(),
                    known_hosts: true,
                },
                container: "git-clone",
                present: &[
                    "--ssh-key-file=/etc/git-secret/ssh",
                    "--ssh-known-hosts-file=/etc/git-secret/known_hosts",
                ],
                absent: &["--ssh-known-hosts=false"],
            },
            Case {
                name: "ssh without known_hosts",
                dw: with(|s| s.gitrepo = "git@github.com:me/site.git".into()),
                auth: GitAuth::Ssh {
                    secret: "creds".into(),
                    known_hosts: false,
                },
                container: "git-clone",
                present: &["--ssh-known-hosts=false"],
                absent: &["--ssh-known-hosts-file=/etc/git-secret/known_hosts"],
            },
        ];
        for case in cases {
            let d = desired_deployment(&case.dw, &case.auth, &PodIdentity::default());
            let got = args(&d, case.container);
            for p in case.present {
                assert!(
                    got.iter().any(|a| a == p),
                    "{}: missing {p} in {got:?}",
                    case.name
                );
            }
            for a in case.absent {
                assert!(!got.iter().any(|x| x == a), "{}: unexpected {a}", case.name);
            }
        }
    }

    #[test]
    fn credentials_are_mounted_from_the_secret() {
        let dw = with(|s| {
            s.credentials = Some(CredentialsSpec {
                secret_name: "creds".into(),
            })
        });
        let d = desired_deployment(
            &dw,
            &GitAuth::Https {
                secret: "creds".into(),
            },
            &PodIdentity::default(),
        );
        let pod = d.spec.unwrap().template.spec.unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == "git-secret")
            .expect("secret volume");
        assert_eq!(volume.secret.unwrap().secret_name.as_deref(), Some("creds"));
        let init = &pod.init_containers.unwrap()[0];
        let user = init
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "GITSYNC_USERNAME")
            .unwrap();
        let key = user
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!((key.name.as_str(), key.key.as_str()), ("creds", "username"));
    }

    #[test]
    fn identity_goes_into_the_pod_template() {
        let identity = PodIdentity {
            labels: BTreeMap::from([("aadpodidbinding".into(), "mymsi".into())]),
            env: vec![EnvVar {
                name: "AZURE_CLIENT_ID".into(),
                value: Some("c35040d0-f73c-4c4e-a376-9bb1c5532fda".into()),
                ..EnvVar::default()
            }],
            service_account_name: Some("demoweb1".into()),
        };
        let d = desired_deployment(&seed(), &GitAuth::None, &identity);
        let template = d.spec.unwrap().template;
        assert_eq!(
            template.metadata.unwrap().labels.unwrap()["aadpodidbinding"],
            "mymsi"
        );
        let pod = template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("demoweb1"));

        // Without an account of its own, the template still names one: the namespace's default.
        let plain = desired_deployment(&seed(), &GitAuth::None, &PodIdentity::default());
        let plain = plain.spec.unwrap().template.spec.unwrap();
        assert_eq!(plain.service_account_name.as_deref(), Some("default"));
        assert_eq!(plain.automount_service_account_token, Some(false));
        assert_eq!(
            pod.containers[0].env.as_ref().unwrap()[0].name,
            "AZURE_CLIENT_ID"
        );
    }

    #[test]
    fn image_and_resources_are_the_users() {
        let dw = with(|s| {
            s.image = Some("nginx:1.27".into());
            s.resources = Some(Default::default());
        });
        let d = desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
        let web = container(&d, "web").unwrap();
        assert_eq!(web.image.as_deref(), Some("nginx:1.27"));
        assert!(web.resources.is_some());
    }

    fn autoscaled(min: i32, max: i32) -> DemoWeb {
        with(|s| {
            s.autoscaling = Some(AutoscalingSpec {
                min_replicas: min,
                max_replicas: max,
                target_cpu_utilization_percentage: None,
            })
        })
    }

    #[test]
    fn disruption_budget_only_for_replicated_sites() {
        let cases = [
            ("one replica", with(|s| s.replicas = 1), false),
            ("no replicas", with(|s| s.replicas = 0), false),
            ("two replicas", with(|s| s.replicas = 2), true),
            ("autoscaled from one", autoscaled(1, 5), false),
            (
                "autoscaled from two, replicas ignored",
                {
                    let mut dw = autoscaled(2, 5);
                    dw.spec.replicas = 1;
                    dw
                },
                true,
            ),
        ];
        for (name, dw, want) in cases {
            let pdb = desired_disruption_budget(&dw);
            assert_eq!(pdb.is_some(), want, "{name}");
            if let Some(pdb) = pdb {
                let spec = pdb.spec.unwrap();
                assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)), "{name}");
                assert_eq!(
                    spec.min_available, None,
                    "{name}: never a budget that blocks every eviction"
                );
                assert_eq!(
                    spec.selector.unwrap().match_labels,
                    Some(selector_labels("demoweb1")),
                    "{name}: exactly the site's pods"
                );
            }
        }
    }

    #[test]
    fn autoscaling_leaves_replicas_to_the_autoscaler() {
        let plain = desired_deployment(&seed(), &GitAuth::None, &PodIdentity::default());
        assert_eq!(plain.spec.unwrap().replicas, Some(2));
        assert!(desired_autoscaler(&seed()).is_none());

        let dw = autoscaled(2, 6);
        let d = desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
        assert_eq!(d.spec.as_ref().unwrap().replicas, None);
        let hpa = desired_autoscaler(&dw).unwrap().spec.unwrap();
        assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 6));
        assert_eq!(hpa.scale_target_ref.kind, "Deployment");
        assert_eq!(hpa.scale_target_ref.name, "demoweb1");
        let target = &hpa.metrics.unwrap()[0].resource.clone().unwrap();
        assert_eq!(target.name, "cpu");
        assert_eq!(target.target.average_utilization, Some(DEFAULT_CPU_TARGET));
    }

    #[test]
    fn autoscaled_web_container_requests_cpu() {
        let requests = |dw: &DemoWeb| {
            let d = desired_deployment(dw, &GitAuth::None, &PodIdentity::default());
            container(&d, "web").unwrap().resources.clone()
        };
        let cpu = |r: Option<ResourceRequirements>, which: &str| {
            let r = r.unwrap_or_default();
            let m = if which == "requests" {
                r.requests
            } else {
                r.limits
            };
            m.and_then(|m| m.get("cpu").map(|q| q.0.clone()))
        };
        assert_eq!(requests(&seed()), None, "no autoscaling, no default");
        assert_eq!(
            cpu(requests(&autoscaled(1, 3)), "requests").as_deref(),
            Some(DEFAULT_CPU_REQUEST)
        );
        let mut users = autoscaled(1, 3);
        users.spec.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("200m".into())),
                ("memory".into(), Quantity("64Mi".into())),
            ])),
            ..ResourceRequirements::default()
        });
        let got = requests(&users);
        assert_eq!(cpu(got.clone(), "requests").as_deref(), Some("200m"));
        assert!(got.unwrap().requests.unwrap().contains_key("memory"));
        let mut limited = autoscaled(1, 3);
        limited.spec.resources = Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("cpu".into(), Quantity("1".into()))])),
            ..ResourceRequirements::default()
        });
        assert_eq!(
            cpu(requests(&limited), "requests"),
            None,
            "the API server defaults the request to the limit"
        );
    }

    #[test]
    fn pods_spread_and_roll_without_losing_capacity() {
        for dw in [with(|s| s.replicas = 1), seed(), autoscaled(2, 4)] {
            let d = desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
            let spec = d.spec.as_ref().unwrap();
            let rolling = spec
                .strategy
                .as_ref()
                .unwrap()
                .rolling_update
                .as_ref()
                .unwrap();
            assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));
            assert!(rolling.max_surge.is_some());
            let pod = spec.template.spec.as_ref().unwrap();
            let keys: Vec<&str> = pod
                .topology_spread_constraints
                .iter()
                .flatten()
                .map(|c| {
                    assert_eq!(c.when_unsatisfiable, "ScheduleAnyway");
                    assert_eq!(
                        c.label_selector.as_ref().unwrap().match_labels,
                        Some(selector_labels("demoweb1"))
                    );
                    c.topology_key.as_str()
                })
                .collect();
            assert_eq!(keys, SPREAD_KEYS);
            let web = container(&d, "web").unwrap();
            let pre_stop = web.lifecycle.as_ref().unwrap().pre_stop.as_ref().unwrap();
            assert_eq!(
                pre_stop.exec.as_ref().unwrap().command,
                Some(vec!["sleep".to_owned(), PRE_STOP_SECONDS.to_string()])
            );
            assert!(pod.termination_grace_period_seconds.unwrap() > PRE_STOP_SECONDS);
        }
        // Scaling must not roll the pods: the template is the same at any count.
        let template = |dw: &DemoWeb| {
            desired_deployment(dw, &GitAuth::None, &PodIdentity::default())
                .spec
                .unwrap()
                .template
        };
        assert_eq!(
            template(&with(|s| s.replicas = 1)),
            template(&with(|s| s.replicas = 5))
        );
    }

    #[test]
    fn nginx_config_serves_path_and_ingress_prefix() {
        let cases = [
            (with(|_| {}), "root /git/current;", None),
            (
                with(|s| s.path = Some("public/".into())),
                "root /git/current/public;",
                None,
            ),
            (
                with(|s| {
                    s.ingress = Some(IngressSpec {
                        host: "www.example.com".into(),
                        path: "/site/".into(),
                        class_name: None,
                        tls: None,
                        allowed_source_ranges: vec![],
                        annotations: BTreeMap::new(),
                    })
                }),
                "root /git/current;",
                Some("rewrite ^/site/(.*)$ /$1 last;"),
            ),
        ];
        for (dw, root, extra) in cases {
            let conf = nginx_config(&dw);
            assert!(conf.contains(root), "{conf}");
            assert!(conf.contains("listen 8080;") && conf.contains("listen 8081;"));
            if let Some(extra) = extra {
                assert!(conf.contains(extra), "{conf}");
            }
        }
    }

    #[test]
    fn config_change_changes_the_pod_template_hash() {
        let a = desired_deployment(&seed(), &GitAuth::None, &PodIdentity::default());
        let b = desired_deployment(
            &with(|s| s.path = Some("docs".into())),
            &GitAuth::None,
            &PodIdentity::default(),
        );
        let hash = |d: &Deployment| {
            d.spec
                .as_ref()
                .unwrap()
                .template
                .metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()[CONFIG_HASH_ANNOTATION]
                .clone()
        };
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(
            hash(&a),
            hash(&desired_deployment(
                &seed(),
                &GitAuth::None,
                &PodIdentity::default()
            ))
        );
    }

    #[test]
    fn service_and_config_map() {
        let dw = seed();
        let svc = desired_service(&dw);
        assert_eq!(svc.metadata.name.as_deref(), Some("demoweb1"));
        let spec = svc.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(port.port, 80);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        let cm = desired_config_map(&dw);
        assert_eq!(cm.metadata.name.as_deref(), Some("demoweb1-nginx"));
        assert!(cm.data.unwrap()["nginx.conf"].contains("root /git/current;"));
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn credentials_against_the_secret() {
        let keys = |ks: &[&str]| ks.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
        let https = with(|s| {
            s.credentials = Some(CredentialsSpec {
                secret_name: "creds".into(),
            })
        });
        let ssh = with(|s| {
            s.gitrepo = "git@github.com:me/site.git".into();
            s.credentials = Some(CredentialsSpec {
                secret_name: "creds".into(),
            })
        });
        let https_auth = GitAuth::Https {
            secret: "creds".into(),
        };
        let cases: Vec<(
            &str,
            DemoWeb,
            Option<BTreeSet<String>>,
            Result<GitAuth, &str>,
        )> = vec![
            ("public", seed(), None, Ok(GitAuth::None)),
            (
                "https ok",
                https.clone(),
                Some(keys(&["username", "password"])),
                Ok(https_auth),
            ),
            ("secret missing", https.clone(), None, Err("not found")),
            (
                "password missing",
                https,
                Some(keys(&["username"])),
                Err("no key password"),
            ),
            (
                "ssh with known_hosts",
                ssh.clone(),
                Some(keys(&["ssh", "known_hosts"])),
                Ok(GitAuth::Ssh {
                    secret: "creds".into(),
                    known_hosts: true,
                }),
            ),
            (
                "ssh without known_hosts",
                ssh.clone(),
                Some(keys(&["ssh"])),
                Ok(GitAuth::Ssh {
                    secret: "creds".into(),
                    known_hosts: false,
                }),
            ),
            (
                "ssh key missing",
                ssh,
                Some(keys(&["username", "password"])),
                Err("no key ssh"),
            ),
        ];
        for (name, dw, secret, expected) in cases {
            match (git_auth(&dw, secret.as_ref()), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{name}"),
                (Err(err), Err(needle)) => {
                    assert_eq!(err.reason, reason::CREDENTIALS_NOT_FOUND, "{name}");
                    assert!(err.message.contains(needle), "{name}: {}", err.message);
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn ssh_repos() {
        for (repo, ssh) in [
            ("https://github.com/a/b.git", false),
            ("http://example.com/x", false),
            ("ssh://git@example.com/x", true),
            ("git@github.com:a/b.git", true),
        ] {
            assert_eq!(is_ssh_repo(repo), ssh, "{repo}");
        }
    }
}
