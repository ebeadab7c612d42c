//! `CustomerGatewayConfiguration` XML → draft (FACTS §1a).
//!
//! Tolerant the way the real thing needs: comments, any element order, unknown elements, an empty
//! `vpn_gateway_id` (transit gateways), no `bgp` / `vpn_connection_attributes` (static vs BGP).

use std::path::Path;

use roxmltree::{Document, Node};

use super::build::{At, DraftConnection, DraftTunnel};
use super::error::{ConfigError, line_col};

/// Parse the XML. `context` prefixes locations when the XML is embedded (e.g. in describe JSON).
pub(crate) fn parse(file: &Path, text: &str, context: &str) -> Result<DraftConnection, ConfigError> {
    let doc = Document::parse(text).map_err(|e| {
        let pos = e.pos();
        ConfigError::Syntax {
            file: file.to_path_buf(),
            format: if context.is_empty() {
                "XML"
            } else {
                "XML (embedded)"
            },
            line: pos.row as usize,
            column: pos.col as usize,
            message: if context.is_empty() {
                e.to_string()
            } else {
                format!("{e} (in {context})")
            },
        }
    })?;
    let root = doc.root_element();
    if root.tag_name().name() != "vpn_connection" {
        return Err(ConfigError::UnknownFormat {
            file: file.to_path_buf(),
            why: format!(
                "the XML root element is <{}>, not <vpn_connection>",
                root.tag_name().name()
            ),
        });
    }
    let loc = Locator { text, context };
    let mut d = DraftConnection {
        tunnels_at: loc.at(root),
        ..Default::default()
    };
    d.id = root
        .attribute("id")
        .map(|v| At::new(v.trim(), loc.at(root) + " attribute id"));
    d.customer_gateway_id = leaf(root, &["customer_gateway_id"]).map(|n| loc.value(n));
    d.vpn_gateway_id = leaf(root, &["vpn_gateway_id"]).map(|n| text_of(n));
    d.declared_static =
        leaf(root, &["vpn_connection_attributes"]).is_some_and(|n| text_of(n).contains("NoBGP"));

    for t in root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "ipsec_tunnel")
    {
        if d.tunnels.len() >= 3 {
            d.extra_tunnels += 1;
            continue;
        }
        let mut dt = DraftTunnel {
            at: loc.at(t),
            ..Default::default()
        };
        let get = |path: &[&str]| leaf(t, path).map(|n| loc.value(n));
        dt.customer_outside = get(&["customer_gateway", "tunnel_outside_address", "ip_address"]);
        dt.aws_outside = get(&["vpn_gateway", "tunnel_outside_address", "ip_address"]);
        dt.customer_inside = get(&["customer_gateway", "tunnel_inside_address", "ip_address"]);
        dt.aws_inside = get(&["vpn_gateway", "tunnel_inside_address", "ip_address"]);
        dt.inside_prefix = get(&["customer_gateway", "tunnel_inside_address", "network_cidr"])
            .or_else(|| get(&["vpn_gateway", "tunnel_inside_address", "network_cidr"]));
        // Not documented by AWS; the shape one third-party generator reads (FACTS §1a.3).
        dt.customer_inside_ipv6 = get(&["customer_gateway", "tunnel_inside_ipv6_address", "ip_address"]);
        dt.aws_inside_ipv6 = get(&["vpn_gateway", "tunnel_inside_ipv6_address", "ip_address"]);
        dt.inside_ipv6_prefix = get(&["customer_gateway", "tunnel_inside_ipv6_address", "prefix_length"])
            .or_else(|| get(&["vpn_gateway", "tunnel_inside_ipv6_address", "prefix_length"]));
        dt.bgp_seen = child(t, "customer_gateway")
            .and_then(|c| child(c, "bgp"))
            .is_some()
            || child(t, "vpn_gateway").and_then(|c| child(c, "bgp")).is_some();
        dt.customer_asn = get(&["customer_gateway", "bgp", "asn"]);
        dt.aws_asn = get(&["vpn_gateway", "bgp", "asn"]);
        dt.hold_time = get(&["vpn_gateway", "bgp", "hold_time"])
            .or_else(|| get(&["customer_gateway", "bgp", "hold_time"]));
        dt.psk = get(&["ike", "pre_shared_key"]);
        dt.phase1_lifetime = get(&["ike", "lifetime"]);
        dt.phase2_lifetime = get(&["ipsec", "lifetime"]);
        dt.dpd_interval = get(&["ipsec", "dead_peer_detection", "interval"]);
        dt.dpd_retries = get(&["ipsec", "dead_peer_detection", "retries"]);
        dt.tcp_mss = get(&["ipsec", "tcp_mss_adjustment"]);
        dt.clear_df = get(&["ipsec", "clear_df_bit"]);
        dt.fragmentation = get(&["ipsec", "fragmentation_before_encryption"]);
        d.tunnels.push(dt);
    }
    Ok(d)
}

struct Locator<'a> {
    text: &'a str,
    context: &'a str,
}

impl Locator<'_> {
    /// "line N, <a>/<b>[2]/<c>" (plus the embedding context).
    fn at(&self, node: Node) -> String {
        let (line, _) = line_col(self.text, node.range().start);
        let mut parts = Vec::new();
        for n in node.ancestors().filter(|n| n.is_element()) {
            let name = n.tag_name().name();
            let same: Vec<_> = n
                .parent()
                .map(|p| {
                    p.children()
                        .filter(|c| c.is_element() && c.tag_name().name() == name)
                        .collect()
                })
                .unwrap_or_default();
            if same.len() > 1 {
                let idx = same.iter().position(|c| *c == n).unwrap_or(0) + 1;
                parts.push(format!("<{name}>[{idx}]"));
            } else {
                parts.push(format!("<{name}>"));
            }
        }
        parts.reverse();
        let path = parts.join("/");
        if self.context.is_empty() {
            format!("line {line}, {path}")
        } else {
            format!("{}, XML line {line}, {path}", self.context)
        }
    }

    fn value(&self, node: Node) -> At {
        At::new(text_of(node), self.at(node))
    }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

fn leaf<'a, 'i>(node: Node<'a, 'i>, path: &[&str]) -> Option<Node<'a, 'i>> {
    path.iter().try_fold(node, |n, name| child(n, name))
}

/// The trimmed text content of an element (text and CDATA children only).
fn text_of(node: Node) -> String {
    node.children()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_string()
}
