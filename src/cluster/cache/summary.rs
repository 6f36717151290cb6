//! The engine's container list entry (`GET /containers/json`) and its parts, read in one pass:
//! typed where the manager decides on or rewrites a member, pre-serialised for the rest. It only
//! parses; it must not fetch, cache or decide anything.
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// List-entry members that `docker ps` rewrites on every request.
pub const DYNAMIC_MEMBERS: [&str; 4] = ["Names", "Status", "State", "Ports"];

/// One published port of a list entry (`Ports[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Port {
    #[serde(rename = "IP")]
    pub ip: Option<Box<str>>,
    pub private_port: u16,
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: Box<str>,
}

/// One mount of a list entry, as far as the `volume` filter reads it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Mount {
    pub name: Option<Box<str>>,
    pub destination: Box<str>,
}

/// One network of a list entry, as far as the `network` filter reads it.
#[derive(Debug, Clone, Default)]
pub struct NetworkRef {
    pub name: Box<str>,
    pub network_id: Box<str>,
}

/// A container's labels, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// One label's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// Every label, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Labels, D::Error> {
        // Engines write `null` for no labels; values are strings (anything else is dropped).
        let map: Option<BTreeMap<String, Value>> = Option::deserialize(d)?;
        Ok(Labels(
            map.into_iter()
                .flatten()
                .filter_map(|(k, v)| match v {
                    Value::String(v) => Some((k.into_boxed_str(), v.into_boxed_str())),
                    _ => None,
                })
                .collect(),
        ))
    }
}

/// The engine's `GET /containers/json` entry, read in one pass: the members the manager
/// decides on or rewrites are typed; every other member is kept as the engine wrote it.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub id: String,
    pub names: Vec<Box<str>>,
    pub image: Box<str>,
    pub image_id: Box<str>,
    pub state: Box<str>,
    pub status: Box<str>,
    pub created: i64,
    pub ports: Vec<Port>,
    pub labels: Labels,
    pub mounts: Vec<Mount>,
    pub networks: Vec<NetworkRef>,
    /// The members other than [`DYNAMIC_MEMBERS`], serialised (`"Id":…,"Image":…`, no braces).
    pub static_json: String,
}

/// A JSON object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(v.to_string().into()))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Summary, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Summary;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a container list entry")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Summary, A::Error> {
                use serde::de::Error;
                let mut s = Summary::default();
                while let Some(Key(key)) = map.next_key::<Key>()? {
                    let text = |o: Option<String>| o.unwrap_or_default().into_boxed_str();
                    match &*key {
                        "Names" => {
                            let names: Option<Vec<String>> = map.next_value()?;
                            s.names = names
                                .into_iter()
                                .flatten()
                                .map(String::into_boxed_str)
                                .collect();
                        }
                        "State" => s.state = text(map.next_value()?),
                        "Status" => s.status = text(map.next_value()?),
                        "Ports" => s.ports = map.next_value::<Option<_>>()?.unwrap_or_default(),
                        _ => {
                            let raw: &serde_json::value::RawValue = map.next_value()?;
                            let json = raw.get();
                            let parse = |what: &str| A::Error::custom(format!("invalid {what}"));
                            match &*key {
                                "Id" => {
                                    s.id = serde_json::from_str::<Option<String>>(json)
                                        .map_err(|_| parse("Id"))?
                                        .unwrap_or_default()
                                }
                                "Image" => {
                                    s.image = text(serde_json::from_str(json).unwrap_or_default())
                                }
                                "ImageID" => {
                                    s.image_id =
                                        text(serde_json::from_str(json).unwrap_or_default())
                                }
                                "Created" => s.created = serde_json::from_str(json).unwrap_or(0),
                                "Labels" => {
                                    s.labels =
                                        serde_json::from_str(json).map_err(|_| parse("Labels"))?
                                }
                                "Mounts" => {
                                    s.mounts = serde_json::from_str::<Option<_>>(json)
                                        .unwrap_or_default()
                                        .unwrap_or_default()
                                }
                                "NetworkSettings" => s.networks = networks_of(json),
                                _ => {}
                            }
                            if !s.static_json.is_empty() {
                                s.static_json.push(',');
                            }
                            s.static_json
                                .push_str(&serde_json::to_string(&*key).map_err(A::Error::custom)?);
                            s.static_json.push(':');
                            s.static_json.push_str(json);
                        }
                    }
                }
                Ok(s)
            }
        }
        d.deserialize_map(V)
    }
}

/// `NetworkSettings.Networks` of a list entry: names and network IDs.
fn networks_of(json: &str) -> Vec<NetworkRef> {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "PascalCase")]
    struct Settings {
        networks: Option<BTreeMap<String, Endpoint>>,
    }
    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Endpoint {
        #[serde(rename = "NetworkID")]
        network_id: Option<String>,
    }
    let settings: Settings = serde_json::from_str(json).unwrap_or_default();
    settings
        .networks
        .into_iter()
        .flatten()
        .map(|(name, e)| NetworkRef {
            name: name.into_boxed_str(),
            network_id: e.network_id.unwrap_or_default().into_boxed_str(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_entry_splits_into_typed_and_pass_through_members() {
        let raw = r#"{"Id":"abc","Names":["/web"],"Image":"busybox","ImageID":"sha256:1",
            "Command":"sh","Created":7,"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
            {"PrivatePort":53,"Type":"udp"}],"Labels":{"a":"1","\u0062":"2","n":5},"State":"running",
            "Status":"Up 2 minutes","Mounts":[{"Name":"data","Destination":"/data"}],
            "NetworkSettings":{"Networks":{"bridge":{"NetworkID":"n1"}}}}"#;
        let s: Summary = serde_json::from_str(raw).unwrap();
        assert_eq!(s.id, "abc");
        assert_eq!(&*s.state, "running");
        assert_eq!(&*s.status, "Up 2 minutes");
        assert_eq!(s.ports.len(), 2);
        assert_eq!(s.ports[0].public_port, Some(8080));
        assert_eq!(s.ports[1].ip, None);
        assert_eq!(s.labels.get("a"), Some("1"));
        assert_eq!(s.labels.get("b"), Some("2"));
        assert_eq!(s.labels.get("n"), None);
        assert_eq!(s.created, 7);
        assert_eq!(&*s.mounts[0].destination, "/data");
        assert_eq!(&*s.networks[0].network_id, "n1");
        let rest: Value = serde_json::from_str(&format!("{{{}}}", s.static_json)).unwrap();
        let keys: Vec<&str> = rest
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "Id",
                "Image",
                "ImageID",
                "Command",
                "Created",
                "Labels",
                "Mounts",
                "NetworkSettings"
            ]
        );
        assert!(serde_json::from_str::<Summary>("[1]").is_err());
    }
}
