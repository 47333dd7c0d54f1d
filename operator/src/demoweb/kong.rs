//! Kong plugins a DemoWeb names next to its allowlist: the watches that see their types, and the
//! pure check that decides whether the site may be exposed.
//!
//! A DemoWeb with `allowedSourceRanges` may list its own Kong plugins in `konghq.com/plugins` (or
//! the legacy `plugins.konghq.com`) beside the operator's `<name>-allowlist` ip-restriction
//! plugin, as seed 004 does (`http-auth` next to `whitelist-fd`). The schema cannot see
//! KongPlugins, so this check decides, on every reconcile: every named plugin must exist, as a
//! KongPlugin of the DemoWeb's namespace or else a KongClusterPlugin (the order in which Kong
//! Ingress Controller resolves a name), and its type must be one
//! `demoweb_crd::annotations::KONG_PLUGINS` allows. Anything else, including a name the operator
//! cannot resolve yet, withdraws the Ingress (fail closed).
//!
//! KongPlugins and KongClusterPlugins are watched only while their CRDs are served, and kept as
//! metadata plus the `plugin` field: their `config` (which may hold credentials) is skipped by
//! the parser and never stored.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::marker::PhantomData;

use demoweb_crd::DemoWeb;
use demoweb_crd::annotations::{KONG_PLUGIN_KEYS, plugin_refusal};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Deserialize;

use super::ingress::served_version;
use crate::stored::trim_meta;

pub const GROUP: &str = "configuration.konghq.com";
pub const VERSION: &str = "v1";
pub const KONG_PLUGIN_CRD: &str = "kongplugins.configuration.konghq.com";
pub const KONG_CLUSTER_PLUGIN_CRD: &str = "kongclusterplugins.configuration.konghq.com";

/// KongPlugin or KongClusterPlugin.
pub trait PluginKind: Clone + Debug + Send + Sync + 'static {
    type Scope;
    const KIND: &'static str;
    const PLURAL: &'static str;
    const CRD: &'static str;
}

#[derive(Clone, Debug)]
pub struct Namespaced;
impl PluginKind for Namespaced {
    type Scope = NamespaceResourceScope;
    const KIND: &'static str = "KongPlugin";
    const PLURAL: &'static str = "kongplugins";
    const CRD: &'static str = KONG_PLUGIN_CRD;
}

#[derive(Clone, Debug)]
pub struct ClusterWide;
impl PluginKind for ClusterWide {
    type Scope = ClusterResourceScope;
    const KIND: &'static str = "KongClusterPlugin";
    const PLURAL: &'static str = "kongclusterplugins";
    const CRD: &'static str = KONG_CLUSTER_PLUGIN_CRD;
}

/// What the operator keeps of a KongPlugin or KongClusterPlugin: its metadata and its type.
#[derive(Clone, Debug, Deserialize)]
#[serde(bound = "")]
pub struct PluginType<S: PluginKind> {
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The plugin's type, e.g. `basic-auth`.
    #[serde(default)]
    pub plugin: Option<String>,
    #[serde(skip)]
    kind: PhantomData<S>,
}

pub type KongPluginType = PluginType<Namespaced>;
pub type KongClusterPluginType = PluginType<ClusterWide>;

/// The name of the stand-in for "every plugin": not a valid object name (it starts with a dot),
/// so no real plugin has it; the controller runtime needs a name on every trigger.
const RELISTED: &str = ".relisted";

impl<S: PluginKind> PluginType<S> {
    /// A stand-in that re-queues every DemoWeb naming a plugin (see [`plugin_reflector`]).
    fn relisted() -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(RELISTED.to_owned()),
                ..ObjectMeta::default()
            },
            plugin: None,
            kind: PhantomData,
        }
    }
}

impl<S: PluginKind> Resource for PluginType<S> {
    type DynamicType = ();
    type Scope = S::Scope;

    fn kind(_: &()) -> std::borrow::Cow<'_, str> {
        S::KIND.into()
    }
    fn group(_: &()) -> std::borrow::Cow<'_, str> {
        GROUP.into()
    }
    fn version(_: &()) -> std::borrow::Cow<'_, str> {
        VERSION.into()
    }
    fn plural(_: &()) -> std::borrow::Cow<'_, str> {
        S::PLURAL.into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

type Events<K> = BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>;

/// The state of a watch that runs only while its CRD is served.
struct Gate<K: Resource + 'static> {
    crd: Events<CustomResourceDefinition>,
    api: Api<K>,
    inner: Option<Events<K>>,
    /// During a re-list of the CRD: whether it was seen served.
    listing: Option<bool>,
    /// Whether the served state is known (the first "not served" empties the store once, so
    /// that it counts as listed).
    known: bool,
    pending: VecDeque<Result<watcher::Event<K>, watcher::Error>>,
}

impl<K> Gate<K>
where
    K: Resource<DynamicType = ()> + Clone + for<'de> Deserialize<'de> + Debug + Send + 'static,
{
    fn set_served(&mut self, served: bool) {
        match (served, self.inner.is_some()) {
            (true, false) => {
                tracing::info!(kind = %K::kind(&()), "CRD served: watching");
                self.inner = Some(watcher(self.api.clone(), watcher::Config::default()).boxed());
            }
            (false, true) => {
                tracing::info!(kind = %K::kind(&()), "CRD no longer served: not watching");
                self.inner = None;
                self.empty();
            }
            (false, false) if !self.known => self.empty(),
            _ => {}
        }
        self.known = true;
    }

    /// An empty re-list: the store forgets every object and counts as listed.
    fn empty(&mut self) {
        self.pending.push_back(Ok(watcher::Event::Init));
        self.pending.push_back(Ok(watcher::Event::InitDone));
    }

    fn on_crd(&mut self, event: watcher::Event<CustomResourceDefinition>) {
        let served = |crd: &CustomResourceDefinition| served_version(crd, VERSION).is_some();
        match event {
            watcher::Event::Init => self.listing = Some(false),
            watcher::Event::InitApply(crd) => {
                self.listing = Some(self.listing.unwrap_or(false) || served(&crd));
            }
            watcher::Event::InitDone => {
                let served = self.listing.take().unwrap_or(false);
                self.set_served(served);
            }
            watcher::Event::Apply(crd) => self.set_served(served(&crd)),
            watcher::Event::Delete(_) => self.set_served(false),
        }
    }
}

/// Watch events of `api`'s kind, but only while the CRD `crd_name` serves `v1`: the watch starts
/// when the CRD is established and stops (the store emptied) when it goes, so a cluster without
/// Kong costs one CRD watch and no failing requests.
pub fn while_served<K>(
    client: &Client,
    crd_name: &str,
    api: Api<K>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + for<'de> Deserialize<'de> + Debug + Send + 'static,
{
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let config = watcher::Config::default().fields(&format!("metadata.name={crd_name}"));
    let gate = Gate {
        crd: watcher(crds, config).default_backoff().boxed(),
        api,
        inner: None,
        listing: None,
        known: false,
        pending: VecDeque::new(),
    };
    futures::stream::unfold(gate, |mut gate| async move {
        loop {
            if let Some(item) = gate.pending.pop_front() {
                return Some((item, gate));
            }
            let next = {
                let Gate { crd, inner, .. } = &mut gate;
                let inner = async {
                    match inner.as_mut() {
                        Some(events) => events.next().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    event = crd.next() => Next::Crd(Box::new(event)),
                    Some(item) = inner => Next::Inner(item),
                }
            };
            match next {
                Next::Inner(item) => return Some((item, gate)),
                Next::Crd(event) => match *event {
                    Some(Ok(event)) => gate.on_crd(event),
                    Some(Err(error)) => {
                        tracing::debug!(%error, kind = %K::kind(&()), "CRD watch");
                    }
                    None => return None,
                },
            }
        }
    })
}

/// What [`while_served`] heard first (a CRD event is large: boxed).
enum Next<K> {
    Crd(Box<Option<Result<watcher::Event<CustomResourceDefinition>, watcher::Error>>>),
    Inner(Result<watcher::Event<K>, watcher::Error>),
}

/// A reflector over one plugin kind, fed by [`while_served`], and the stream of plugins whose
/// change may change a DemoWeb's plan: applied and deleted ones, and after every (re-)list a
/// stand-in ([`PluginType::relisted`]) that stands for all of them: a re-list, or the CRD going,
/// may have changed any without a delete event.
pub fn plugin_reflector<S: PluginKind>(
    client: &Client,
    api: Api<PluginType<S>>,
) -> (
    Store<PluginType<S>>,
    impl Stream<Item = Result<PluginType<S>, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = while_served(client, S::CRD, api)
        .modify(|p| trim_meta(p.meta_mut()))
        .reflect(writer)
        .filter_map(|event| async move {
            match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::Delete(p)) => Some(Ok(p)),
                Ok(watcher::Event::InitDone) => Some(Ok(PluginType::relisted())),
                Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => None,
                Err(error) => Some(Err(error)),
            }
        });
    (reader, stream)
}

/// The plugins a DemoWeb's Ingress annotations name, without the operator's own, each once.
pub fn named_plugins(annotations: &BTreeMap<String, String>, own: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for key in KONG_PLUGIN_KEYS {
        for name in annotations
            .get(key)
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
        {
            if !name.is_empty() && name != own && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

/// The plugins a DemoWeb names next to its allowlist (none without an allowlist: then the
/// annotation is the user's business, as any other).
pub fn plugins_to_check(dw: &DemoWeb, own: &str) -> Vec<String> {
    match &dw.spec.ingress {
        Some(i) if !i.allowed_source_ranges.is_empty() => named_plugins(&i.annotations, own),
        _ => Vec::new(),
    }
}

/// What the operator found for one named plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A KongPlugin in the DemoWeb's namespace, with its type.
    Namespaced(Option<String>),
    /// No KongPlugin of that name, but a KongClusterPlugin, with its type.
    Cluster(Option<String>),
    Missing,
}

/// Looks a plugin name up as Kong Ingress Controller resolves it: a KongPlugin of the namespace
/// first, else a KongClusterPlugin.
pub fn find(
    namespace: &str,
    name: &str,
    plugins: &Store<KongPluginType>,
    cluster_plugins: &Store<KongClusterPluginType>,
) -> Found {
    if let Some(p) = plugins.get(&ObjectRef::new(name).within(namespace)) {
        return Found::Namespaced(p.plugin.clone());
    }
    match cluster_plugins.get(&ObjectRef::new(name)) {
        Some(p) => Found::Cluster(p.plugin.clone()),
        None => Found::Missing,
    }
}

/// Whether the named plugins may stand next to the allowlist: `Err` names the first that may
/// not, and why, in words for the DemoWeb's status.
pub fn check(namespace: &str, named: &[(String, Found)]) -> Result<(), String> {
    for (name, found) in named {
        let not_exposed = "so the site is not exposed";
        if let Some((other_ns, _)) = name.split_once(':') {
            return Err(format!(
                "Kong plugin {name:?} named in konghq.com/plugins is in namespace {other_ns:?}: plugins of other namespaces cannot be checked next to allowedSourceRanges, {not_exposed}; use a KongPlugin of namespace {namespace:?} or a KongClusterPlugin"
            ));
        }
        let (kind, plugin) = match found {
            Found::Missing => {
                return Err(format!(
                    "Kong plugin {name:?} named in konghq.com/plugins does not exist (no KongPlugin {name:?} in namespace {namespace:?} and no KongClusterPlugin {name:?}), so its type cannot be checked next to allowedSourceRanges and the site is not exposed until it exists"
                ));
            }
            Found::Namespaced(plugin) => ("KongPlugin", plugin),
            Found::Cluster(plugin) => ("KongClusterPlugin", plugin),
        };
        let Some(plugin) = plugin.as_deref().filter(|p| !p.is_empty()) else {
            return Err(format!(
                "{kind} {name:?} named in konghq.com/plugins has no plugin type, {not_exposed}"
            ));
        };
        if let Some(why) = plugin_refusal(plugin) {
            return Err(format!(
                "{kind} {name:?} named in konghq.com/plugins is of type {plugin:?}, which may not stand next to allowedSourceRanges: {why}; {not_exposed}"
            ));
        }
    }
    Ok(())
}

/// DemoWebs whose plugin lists name this plugin (any plugin, for the re-list stand-in).
pub fn demowebs_for_plugin<S: PluginKind>(
    plugin: &PluginType<S>,
    demowebs: &Store<DemoWeb>,
) -> Vec<ObjectRef<DemoWeb>> {
    let name = plugin.metadata.name.as_deref().filter(|n| *n != RELISTED);
    let namespace = plugin.metadata.namespace.as_deref();
    demowebs
        .state()
        .iter()
        .filter(|dw| {
            let own = super::desired::allowlist_name(&dw.name_any());
            let named = plugins_to_check(dw, &own);
            match name {
                None => !named.is_empty(),
                Some(name) => {
                    (namespace.is_none() || namespace == dw.metadata.namespace.as_deref())
                        && named.iter().any(|n| n == name)
                }
            }
        })
        .map(|dw| ObjectRef::from_obj(&**dw))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demoweb::desired::tests::seed;
    use kube::runtime::reflector;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn both_keys_are_read_and_the_operators_own_plugin_is_left_out() {
        let a = annotations(&[
            ("konghq.com/plugins", " http-auth, site-allowlist,,rate "),
            ("plugins.konghq.com", "legacy,http-auth"),
        ]);
        assert_eq!(
            named_plugins(&a, "site-allowlist"),
            ["http-auth", "rate", "legacy"]
        );
        assert!(named_plugins(&BTreeMap::new(), "x").is_empty());
    }

    #[test]
    fn every_way_a_plugin_could_widen_access_is_refused_with_its_name() {
        let ok = |found: Found| check("sites", &[("p".to_owned(), found)]);
        assert_eq!(ok(Found::Namespaced(Some("basic-auth".into()))), Ok(()));
        assert_eq!(ok(Found::Cluster(Some("key-auth".into()))), Ok(()));
        let cases = [
            (Found::Missing, "does not exist"),
            (Found::Namespaced(None), "no plugin type"),
            (Found::Namespaced(Some("ip-restriction".into())), "replace"),
            (Found::Namespaced(Some("pre-function".into())), "code"),
            (Found::Cluster(Some("post-function".into())), "code"),
            (Found::Namespaced(Some("my-lua".into())), "custom"),
            (Found::Namespaced(Some("cors".into())), "before"),
        ];
        for (found, why) in cases {
            let message = ok(found.clone()).expect_err("refused");
            assert!(
                message.contains("\"p\"")
                    && message.contains(why)
                    && message.contains("not exposed"),
                "{found:?}: {message}"
            );
        }
        let other = check("sites", &[("team:p".to_owned(), Found::Missing)]).unwrap_err();
        assert!(other.contains("other namespaces"), "{other}");
        // The first refused plugin is named, after the good ones.
        let both = check(
            "sites",
            &[
                (
                    "auth".to_owned(),
                    Found::Namespaced(Some("basic-auth".into())),
                ),
                (
                    "code".to_owned(),
                    Found::Namespaced(Some("pre-function".into())),
                ),
            ],
        )
        .unwrap_err();
        assert!(both.contains("\"code\""), "{both}");
    }

    fn plugin<S: PluginKind>(ns: Option<&str>, name: &str, plugin: &str) -> PluginType<S> {
        PluginType {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: ns.map(Into::into),
                ..Default::default()
            },
            plugin: Some(plugin.into()),
            kind: PhantomData,
        }
    }

    #[test]
    fn lookup_prefers_the_namespaces_plugin_and_mappers_find_the_demowebs() {
        let (plugins, mut pw) = reflector::store::<KongPluginType>();
        let (cluster, mut cw) = reflector::store::<KongClusterPluginType>();
        pw.apply_watcher_event(&watcher::Event::Apply(plugin(
            Some("default"),
            "auth",
            "basic-auth",
        )));
        cw.apply_watcher_event(&watcher::Event::Apply(plugin(None, "auth", "pre-function")));
        cw.apply_watcher_event(&watcher::Event::Apply(plugin(None, "global", "key-auth")));
        assert_eq!(
            find("default", "auth", &plugins, &cluster),
            Found::Namespaced(Some("basic-auth".into()))
        );
        assert_eq!(
            find("other", "auth", &plugins, &cluster),
            Found::Cluster(Some("pre-function".into()))
        );
        assert_eq!(find("default", "none", &plugins, &cluster), Found::Missing);

        let (demowebs, mut dw_writer) = reflector::store::<DemoWeb>();
        let mut site = seed();
        site.spec.ingress = Some(demoweb_crd::demoweb::IngressSpec {
            host: "a.example.com".into(),
            path: "/".into(),
            class_name: Some("kong".into()),
            tls: None,
            allowed_source_ranges: vec!["10.0.0.0/8".into()],
            annotations: annotations(&[("konghq.com/plugins", "auth")]),
        });
        let mut open = site.clone();
        open.metadata.name = Some("open".into());
        open.spec
            .ingress
            .as_mut()
            .unwrap()
            .allowed_source_ranges
            .clear();
        dw_writer.apply_watcher_event(&watcher::Event::Apply(site));
        dw_writer.apply_watcher_event(&watcher::Event::Apply(open));
        let names = |refs: Vec<ObjectRef<DemoWeb>>| -> Vec<String> {
            refs.into_iter().map(|r| r.name).collect()
        };
        let auth = plugin::<Namespaced>(Some("default"), "auth", "basic-auth");
        assert_eq!(names(demowebs_for_plugin(&auth, &demowebs)), ["demoweb1"]);
        let elsewhere = plugin::<Namespaced>(Some("other"), "auth", "basic-auth");
        assert!(demowebs_for_plugin(&elsewhere, &demowebs).is_empty());
        let cluster_auth = plugin::<ClusterWide>(None, "auth", "basic-auth");
        assert_eq!(
            names(demowebs_for_plugin(&cluster_auth, &demowebs)),
            ["demoweb1"]
        );
        assert_eq!(
            names(demowebs_for_plugin(&KongPluginType::relisted(), &demowebs)),
            ["demoweb1"]
        );
    }

    #[test]
    fn the_config_is_not_kept() {
        let json = r#"{"apiVersion":"configuration.konghq.com/v1","kind":"KongPlugin",
            "metadata":{"name":"auth","namespace":"default"},
            "plugin":"basic-auth","config":{"secret":"hunter2"}}"#;
        let p: KongPluginType = serde_json::from_str(json).unwrap();
        assert_eq!(p.plugin.as_deref(), Some("basic-auth"));
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
