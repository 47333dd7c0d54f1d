//! Pure builders for a DemoWeb's Deployment, ConfigMap, Service, PodDisruptionBudget and
//! HorizontalPodAutoscaler: deterministic names, the shared labels and owner reference; no I/O.

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
use kube::ResourceExt;

use crate::error::UserError;
use crate::identity::PodIdentity;
use crate::vocabulary::{child_meta, labels, selector_labels, short_hash};

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

/// Container names: the one-time clone (init), the optional `spec.path` check (init), the sync
/// sidecar and nginx. Diagnosis reads the pods' container states by these names.
pub const GIT_CLONE_CONTAINER: &str = "git-clone";
pub const CHECK_PATH_CONTAINER: &str = "check-path";
pub const GIT_SYNC_CONTAINER: &str = "git-sync";
pub const WEB_CONTAINER: &str = "web";
/// A failed container's termination message is the tail of its log when it wrote none: git-sync
/// logs its error last before it exits. (git-sync's `--error-file` cannot be the termination
/// message file: it writes a temporary file beside it and renames it over, and the kubelet
/// bind-mounts that file, which a rename cannot replace.)
const FALLBACK_TO_LOGS: &str = "FallbackToLogsOnError";

/// Annotation on the pod template: the hash of everything that must roll the pods when it changes.
pub const CONFIG_HASH_ANNOTATION: &str = "demoweb.baeke.info/config-hash";
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
        name: if one_time {
            GIT_CLONE_CONTAINER
        } else {
            GIT_SYNC_CONTAINER
        }
        .to_owned(),
        image: Some(GIT_SYNC_IMAGE.to_owned()),
        args: Some(git_sync_args(dw, auth, one_time)),
        env: Some(env),
        volume_mounts: Some(mounts),
        security_context: Some(restricted(GIT_SYNC_UID)),
        termination_message_policy: Some(FALLBACK_TO_LOGS.to_owned()),
        ..Container::default()
    }
}

/// With `spec.path`, an init container after the clone that fails when the path is not a
/// directory of the synced tree: nginx would serve 404s from a ready pod, and no probe would say
/// why. It runs the git-sync image's shell (no other image to pull); the path is an argument,
/// never part of the script.
fn check_path_container(dw: &DemoWeb) -> Option<Container> {
    let root = content_root(dw);
    if root == format!("{GIT_ROOT}/{GIT_LINK}") {
        return None;
    }
    let path = dw.spec.path.clone().unwrap_or_default();
    Some(Container {
        name: CHECK_PATH_CONTAINER.to_owned(),
        image: Some(GIT_SYNC_IMAGE.to_owned()),
        command: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            r#"test -d "$1" || { echo "path \"$2\" is not a directory of the repository" >&2; exit 1; }"#
                .to_owned(),
            CHECK_PATH_CONTAINER.to_owned(),
            root,
            path,
        ]),
        volume_mounts: Some(vec![mount("content", GIT_ROOT, true)]),
        security_context: Some(restricted(GIT_SYNC_UID)),
        termination_message_policy: Some(FALLBACK_TO_LOGS.to_owned()),
        ..Container::default()
    })
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
        name: WEB_CONTAINER.to_owned(),
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
                    init_containers: Some(
                        std::iter::once(git_sync_container(dw, auth, true))
                            .chain(check_path_container(dw))
                            .collect(),
                    ),
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
pub(crate) mod tests;
