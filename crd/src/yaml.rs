//! The one place that reads and writes YAML, so the YAML library can be swapped in one file.

use serde::{Serialize, de::DeserializeOwned};

/// A YAML document that could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("invalid YAML: {0}")]
pub struct YamlError(#[from] serde_yaml::Error);

/// Serialise one value as a YAML document (no leading `---`).
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    Ok(serde_yaml::to_string(value)?)
}

/// Serialise values as a multi-document YAML stream, each document introduced by `---`.
pub fn to_multi_doc<T: Serialize>(values: &[T]) -> Result<String, YamlError> {
    let mut out = String::new();
    for value in values {
        out.push_str("---\n");
        out.push_str(&to_string(value)?);
    }
    Ok(out)
}

/// Parse one YAML document.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    Ok(serde_yaml::from_str(text)?)
}

/// Parse every non-empty document of a multi-document YAML stream as JSON values.
pub fn documents(text: &str) -> Result<Vec<serde_json::Value>, YamlError> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = serde_json::Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

use serde::Deserialize;
