//! Temporary interface stub of the .deb reader (being written on branch wt-deb).
#![allow(missing_docs, clippy::all)]

use std::fmt;

#[derive(Debug, Clone, Default)]
pub struct Control {
    fields: Vec<(String, String)>,
}
#[derive(Debug, thiserror::Error)]
#[error("control error")]
pub struct ControlError;
impl Control {
    pub fn parse(_text: &str) -> Result<Control, ControlError> {
        todo!()
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
    pub fn write_to(&self, out: &mut String) {
        for (n, v) in &self.fields {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push('\n');
        }
    }
}

#[derive(Debug, Clone)]
pub struct Version(String);
#[derive(Debug, thiserror::Error)]
#[error("version error")]
pub struct VersionError;
impl Version {
    pub fn parse(s: &str) -> Result<Version, VersionError> {
        Ok(Version(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn without_epoch(&self) -> &str {
        self.0.split_once(':').map(|(_, r)| r).unwrap_or(&self.0)
    }
    pub fn canonical(&self) -> String {
        self.0.strip_prefix("0:").unwrap_or(&self.0).to_string()
    }
}
impl PartialEq for Version {
    fn eq(&self, o: &Self) -> bool {
        self.canonical() == o.canonical()
    }
}
impl Eq for Version {}
impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Version {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.canonical().cmp(&o.canonical())
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct DebInfo {
    pub package: String,
    pub version: Version,
    pub architecture: String,
    pub source: String,
    pub control: Control,
}
#[derive(Debug, thiserror::Error)]
#[error("deb error")]
pub struct DebError;
pub fn inspect(_data: &[u8]) -> Result<DebInfo, DebError> {
    todo!()
}
#[derive(Debug, thiserror::Error)]
#[error("name error")]
pub struct NameError;
pub fn check_package_name(_s: &str) -> Result<(), NameError> {
    Ok(())
}
pub fn check_architecture(_s: &str) -> Result<(), NameError> {
    Ok(())
}
