//! demoweb-operator: reconciles DemoWeb, AzureIdentity and AzureIdentityBinding objects into
//! Deployments, ConfigMaps, Services, Ingresses and ServiceAccounts.

pub mod cli;
pub mod identity;
