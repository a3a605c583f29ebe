//! hostplane's own nftables table (`ip hostplane`), written as one JSON batch through
//! `nft -j -f -` (the command runner, argv only; the batch goes on stdin).
//!
//! The batch is: add the table, flush it, add its three NAT chains, add every rule. nft applies
//! a batch as one transaction, so the table is replaced atomically and applying the same batch
//! twice leaves the same ruleset (idempotent). Nothing outside the table is named, so the rest
//! of the ruleset is never touched.

use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::command::{Cmd, CommandError};

/// The table's family and name.
pub const FAMILY: &str = "ip";
pub const TABLE: &str = "hostplane";

/// Masquerade traffic from `source/prefix_len` leaving through `out_interface`.
#[derive(Debug, Clone, PartialEq)]
pub struct Masquerade {
    /// Shown as the rule's comment (the API id).
    pub id: String,
    pub source: Ipv4Addr,
    pub prefix_len: u8,
    pub out_interface: String,
}

/// DNAT `listen:listen_port/protocol` to `target:target_port`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dnat {
    pub id: String,
    pub listen: Ipv4Addr,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub listen_port: u16,
    pub target: Ipv4Addr,
    pub target_port: u16,
}

fn chain(name: &str, hook: &str, prio: i32) -> Value {
    json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": name,
        "type": "nat", "hook": hook, "prio": prio, "policy": "accept"}}})
}

fn rule(chain: &str, comment: &str, expr: Vec<Value>) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain,
        "comment": comment, "expr": expr}}})
}

fn eq(left: Value, right: Value) -> Value {
    json!({"match": {"op": "==", "left": left, "right": right}})
}

/// The whole batch for this set of rules.
pub fn batch(masq: &[Masquerade], dnat: &[Dnat]) -> Value {
    let table = json!({"family": FAMILY, "name": TABLE});
    let mut cmds = vec![
        json!({"add": {"table": table.clone()}}),
        json!({"flush": {"table": table}}),
        chain("prerouting", "prerouting", -100),
        // Connections the host itself opens to a forwarded address are forwarded too.
        chain("output", "output", -100),
        chain("postrouting", "postrouting", 100),
    ];
    for m in masq {
        cmds.push(rule(
            "postrouting",
            &m.id,
            vec![
                eq(
                    json!({"payload": {"protocol": "ip", "field": "saddr"}}),
                    json!({"prefix": {"addr": m.source.to_string(), "len": m.prefix_len}}),
                ),
                eq(json!({"meta": {"key": "oifname"}}), json!(m.out_interface)),
                json!({"masquerade": null}),
            ],
        ));
    }
    for d in dnat {
        let expr = vec![
            eq(
                json!({"payload": {"protocol": "ip", "field": "daddr"}}),
                json!(d.listen.to_string()),
            ),
            eq(
                json!({"payload": {"protocol": d.protocol, "field": "dport"}}),
                json!(d.listen_port),
            ),
            json!({"dnat": {"addr": d.target.to_string(), "port": d.target_port}}),
        ];
        cmds.push(rule("prerouting", &d.id, expr.clone()));
        cmds.push(rule("output", &d.id, expr));
    }
    json!({"nftables": cmds})
}

/// Replaces hostplane's table with `batch` in one transaction.
pub async fn apply(batch: &Value) -> Result<(), CommandError> {
    Cmd::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(batch.to_string())
        .run()
        .await?;
    Ok(())
}

/// `nft -j list table ip hostplane`; `None` when the table does not exist.
pub async fn list_table() -> Result<Option<Value>, CommandError> {
    match Cmd::new("nft")
        .args(["-j", "list", "table", FAMILY, TABLE])
        .run_json::<Value>()
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(CommandError::Failed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_replaces_only_our_table() {
        let b = batch(
            &[Masquerade {
                id: "n1".into(),
                source: Ipv4Addr::new(10, 0, 0, 0),
                prefix_len: 24,
                out_interface: "wan0".into(),
            }],
            &[Dnat {
                id: "f1".into(),
                listen: Ipv4Addr::new(192, 0, 2, 1),
                protocol: "tcp",
                listen_port: 80,
                target: Ipv4Addr::new(10, 0, 0, 2),
                target_port: 8080,
            }],
        );
        let cmds = b["nftables"].as_array().unwrap();
        // table add + flush + 3 chains + 1 masquerade + 2 dnat (prerouting, output)
        assert_eq!(cmds.len(), 8);
        for c in cmds {
            let (_, obj) = c.as_object().unwrap().iter().next().unwrap();
            let (_, inner) = obj.as_object().unwrap().iter().next().unwrap();
            let table = inner.get("table").or(inner.get("name")).unwrap();
            assert_eq!(table, TABLE, "{c}");
            assert_eq!(inner["family"], FAMILY);
        }
        assert_eq!(cmds[5]["add"]["rule"]["comment"], "n1");
        assert_eq!(
            cmds[6]["add"]["rule"]["expr"][2]["dnat"]["port"],
            json!(8080)
        );
    }
}
