//! demoweb-operator: reconciles DemoWeb, AzureIdentity and AzureIdentityBinding objects into
//! Deployments, ConfigMaps, Services, Ingresses and ServiceAccounts.

pub mod cli;
pub mod client;
pub mod demoweb;
pub mod error;
pub mod identity;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod runtime;
pub mod server;
pub mod stored;
pub mod vocabulary;
pub mod write;
