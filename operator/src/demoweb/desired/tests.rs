use super::*;
use crate::vocabulary::{LABEL_INSTANCE, LABEL_MANAGED_BY};
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

#[test]
fn failures_reach_the_pod_status() {
    let init_names = |d: &Deployment| -> Vec<String> {
        let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        pod.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect()
    };
    let policy = |d: &Deployment, name: &str| {
        container(d, name)
            .unwrap()
            .termination_message_policy
            .clone()
    };
    let synced = with(|s| {
        s.sync = Some(SyncSpec {
            period: "60s".into(),
        })
    });
    let d = desired_deployment(&synced, &GitAuth::None, &PodIdentity::default());
    assert_eq!(init_names(&d), [GIT_CLONE_CONTAINER], "no path, no check");
    for name in [GIT_CLONE_CONTAINER, GIT_SYNC_CONTAINER] {
        assert_eq!(
            policy(&d, name).as_deref(),
            Some("FallbackToLogsOnError"),
            "{name}: git-sync's last log line is its error"
        );
    }

    let dw = with(|s| s.path = Some("site/public".into()));
    let d = desired_deployment(&dw, &GitAuth::None, &PodIdentity::default());
    assert_eq!(
        init_names(&d),
        [GIT_CLONE_CONTAINER, CHECK_PATH_CONTAINER],
        "the path is checked after the clone"
    );
    let check = container(&d, CHECK_PATH_CONTAINER).unwrap();
    assert_eq!(check.image.as_deref(), Some(GIT_SYNC_IMAGE));
    let command = check.command.clone().unwrap();
    assert_eq!(
        command[3..],
        ["check-path", "/git/current/site/public", "site/public"],
        "the path is an argument of the script, not part of it"
    );
    assert!(!command[2].contains("site/public"));
    assert_eq!(
        policy(&d, CHECK_PATH_CONTAINER).as_deref(),
        Some("FallbackToLogsOnError")
    );
    let dot = with(|s| s.path = Some("/".into()));
    let d = desired_deployment(&dot, &GitAuth::None, &PodIdentity::default());
    assert_eq!(
        init_names(&d),
        [GIT_CLONE_CONTAINER],
        "the root needs no check"
    );
}
