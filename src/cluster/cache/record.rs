//! One cached network or volume: the engine's JSON object kept once, as text, with the few members
//! the manager matches on read out. A parsed `serde_json::Value` tree costs several times its text
//! and networks and volumes are held for every engine, so the tree is dropped once read. It only
//! parses and writes; it must not fetch, cache or decide anything.
use std::fmt::Write;
use std::ops::Range;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::summary::Labels;

/// A network (`GET /networks` entry or inspect) or a volume (`GET /volumes` entry or inspect).
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// `Id` (networks; empty for volumes).
    id: Box<str>,
    /// `Name`: what clients look networks and volumes up by.
    name: Box<str>,
    /// `Driver`: the volume list shows `local` volumes as `node/name`.
    driver: Box<str>,
    /// `Scope`: the network list shows `local` networks as `node/name`.
    scope: Box<str>,
    /// `Labels`, for the `label` list filter.
    labels: Labels,
    /// The object as the manager writes it out: compact, in the engine's member order.
    json: Box<str>,
    /// Where `Name`'s value sits in `json`, so the list can rewrite it without parsing.
    name_at: Option<Range<u32>>,
}

impl Record {
    /// Reads one engine object. The text kept is the object written compactly in the engine's
    /// member order, exactly as serialising the parsed object would write it.
    pub fn from_object(object: &Map<String, Value>) -> Record {
        let text = |key: &str| -> Box<str> {
            object.get(key).and_then(Value::as_str).unwrap_or("").into()
        };
        let mut json = String::from("{");
        let mut name_at = None;
        for (i, (key, value)) in object.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            // `Value`'s display is its compact serialisation; writing to a `String` cannot fail.
            let _ = write!(json, "{}:", Value::from(key.as_str()));
            let start = json.len();
            let _ = write!(json, "{value}");
            if key == "Name" {
                name_at = offsets(start..json.len());
            }
        }
        json.push('}');
        Record {
            id: text("Id"),
            name: text("Name"),
            driver: text("Driver"),
            scope: text("Scope"),
            labels: object
                .get("Labels")
                .and_then(|l| Labels::deserialize(l).ok())
                .unwrap_or_default(),
            json: json.into_boxed_str(),
            name_at,
        }
    }

    /// `Id` (empty for a volume).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `Name`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `Driver`.
    pub fn driver(&self) -> &str {
        &self.driver
    }

    /// `Scope`.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `Labels`.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The object as JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Whether the network is local to its engine (`Scope` is `local` or absent).
    pub fn is_local_network(&self) -> bool {
        matches!(&*self.scope, "local" | "")
    }

    /// Appends the object to `out` with `Name` set to `name`: in its place, or last when the
    /// engine wrote none (as inserting into the parsed object would).
    pub fn write_renamed(&self, name: &str, out: &mut String) {
        let name = Value::from(name);
        match self.name_at.as_ref() {
            Some(at) => {
                let (start, end) = (at.start as usize, at.end as usize);
                out.push_str(&self.json[..start]);
                let _ = write!(out, "{name}");
                out.push_str(&self.json[end..]);
            }
            None => {
                let open = &self.json[..self.json.len() - 1];
                out.push_str(open);
                if open.len() > 1 {
                    out.push(',');
                }
                let _ = write!(out, "\"Name\":{name}}}");
            }
        }
    }
}

/// Starts the next entry of a JSON array being written into `out` (which holds at least its `[`).
pub fn start_array_entry(out: &mut String) {
    if !out.ends_with('[') {
        out.push(',');
    }
}

/// A range as `u32` offsets (half the size); `None` past 4 GiB, which no object comes near.
fn offsets(range: Range<usize>) -> Option<Range<u32>> {
    Some(u32::try_from(range.start).ok()?..u32::try_from(range.end).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GET /networks` answer as an engine writes it (compact, members in the engine's order).
    const NETWORKS: &str = r#"[{"Name":"bridge","Id":"1f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a79881f2e3d4c5b6a7988","Created":"2026-12-05T15:00:00.123456789Z","Scope":"local","Driver":"bridge","EnableIPv4":true,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,"Containers":{},"Options":{"com.docker.network.bridge.default_bridge":"true","com.docker.network.bridge.enable_icc":"true","com.docker.network.bridge.name":"docker0","com.docker.network.driver.mtu":"1500"},"Labels":{}},{"Name":"host","Id":"aa","Created":"2026-12-05T15:00:00Z","Scope":"local","Driver":"host","EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":null},"Internal":false,"Containers":{},"Options":{},"Labels":{"a":"1","é":"<&>"}}]"#;

    fn records(list: &str) -> Vec<Record> {
        let objects: Vec<Map<String, Value>> = serde_json::from_str(list).unwrap();
        objects.iter().map(Record::from_object).collect()
    }

    #[test]
    fn a_network_list_round_trips_byte_for_byte() {
        let records = records(NETWORKS);
        let written: Vec<&str> = records.iter().map(Record::json).collect();
        assert_eq!(format!("[{}]", written.join(",")), NETWORKS);
        assert_eq!(records[0].name(), "bridge");
        assert_eq!(records[0].driver(), "bridge");
        assert!(records[0].is_local_network());
        assert_eq!(records[1].id(), "aa");
        assert_eq!(records[1].labels().get("é"), Some("<&>"));
    }

    #[test]
    fn the_text_is_what_serialising_the_parsed_object_writes() {
        let objects: Vec<Value> = serde_json::from_str(NETWORKS).unwrap();
        for object in &objects {
            let record = Record::from_object(object.as_object().unwrap());
            assert_eq!(record.json(), serde_json::to_string(object).unwrap());
        }
    }

    #[test]
    fn a_renamed_object_keeps_name_in_its_place() {
        for record in records(NETWORKS) {
            let mut written = String::new();
            record.write_renamed("node-1/\"x\"", &mut written);
            let mut expected: Value = serde_json::from_str(record.json()).unwrap();
            expected["Name"] = Value::from("node-1/\"x\"");
            assert_eq!(written, serde_json::to_string(&expected).unwrap());
        }
    }

    #[test]
    fn a_renamed_object_without_a_name_gets_one_last() {
        for (object, expected) in [
            (r#"{}"#, r#"{"Name":"n/"}"#),
            (r#"{"Driver":"local"}"#, r#"{"Driver":"local","Name":"n/"}"#),
        ] {
            let record = Record::from_object(&serde_json::from_str(object).unwrap());
            let mut written = String::new();
            record.write_renamed("n/", &mut written);
            assert_eq!(written, expected);
        }
    }

    #[test]
    fn labels_that_are_not_strings_are_not_matched() {
        let record =
            Record::from_object(&serde_json::from_str(r#"{"Labels":{"a":1,"b":"2"}}"#).unwrap());
        assert_eq!(record.labels().get("a"), None);
        assert_eq!(record.labels().get("b"), Some("2"));
    }
}
