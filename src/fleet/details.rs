//! The optional fields of a device snapshot, exactly as Cloudflare's DEX API lists them, with their
//! types and bounds. Unknown fields are refused, so a typo is a 422 naming it, not lost data.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Number;

/// A field that failed validation: its path inside the snapshot and why.
pub type Violation = (String, String);

type Checked = Result<(), Violation>;

#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Details {
    pub always_on: Option<bool>,
    pub battery_charging: Option<bool>,
    #[schema(minimum = 0)]
    pub battery_cycles: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    pub battery_pct: Option<f64>,
    #[schema(max_length = 256)]
    pub connection_type: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub cpu_pct: Option<f64>,
    #[schema(max_items = 100)]
    pub cpu_pct_by_app: Option<Vec<AppCpu>>,
    pub device_ipv4: Option<IpInfo>,
    pub device_ipv6: Option<IpInfo>,
    #[schema(max_length = 256)]
    pub device_name: Option<String>,
    #[schema(format = Uuid)]
    pub device_registration: Option<String>,
    #[schema(minimum = 0)]
    pub disk_read_bps: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    pub disk_usage_pct: Option<f64>,
    #[schema(minimum = 0)]
    pub disk_write_bps: Option<i64>,
    #[schema(max_length = 256)]
    pub doh_subdomain: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub estimated_loss_pct: Option<f64>,
    pub firewall_enabled: Option<bool>,
    pub gateway_ipv4: Option<IpInfo>,
    pub gateway_ipv6: Option<IpInfo>,
    #[schema(minimum = 0)]
    pub handshake_latency_ms: Option<i64>,
    pub isp_ipv4: Option<IpInfo>,
    pub isp_ipv6: Option<IpInfo>,
    #[schema(max_length = 256)]
    pub metal: Option<String>,
    #[schema(minimum = 0)]
    pub network_rcvd_bps: Option<i64>,
    #[schema(minimum = 0)]
    pub network_sent_bps: Option<i64>,
    #[schema(max_length = 256)]
    pub network_ssid: Option<String>,
    #[schema(format = Email, max_length = 256)]
    pub person_email: Option<String>,
    #[schema(minimum = 0)]
    pub ram_available_kb: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    pub ram_used_pct: Option<f64>,
    #[schema(max_items = 100)]
    pub ram_used_pct_by_app: Option<Vec<AppRam>>,
    #[schema(format = Uuid)]
    pub registration_id: Option<String>,
    pub rtt: Option<Rtt>,
    pub switch_locked: Option<bool>,
    pub tunnel_stats: Option<TunnelStats>,
    #[schema(max_length = 256)]
    pub tunnel_type: Option<String>,
    #[schema(minimum = -150, maximum = 0)]
    pub wifi_strength_dbm: Option<i64>,
}

/// Per-application CPU use; Cloudflare spells these keys in snake_case.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppCpu {
    #[schema(minimum = 0, maximum = 100)]
    pub cpu_pct: Option<f64>,
    #[schema(max_length = 256)]
    pub name: Option<String>,
}

/// Per-application RAM use; snake_case keys as Cloudflare has them.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppRam {
    #[schema(max_length = 256)]
    pub name: Option<String>,
    #[schema(minimum = 0, maximum = 100)]
    pub ram_used_pct: Option<f64>,
}

/// An IP address with its network and ISP details.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpInfo {
    /// An IPv4 address in the `…Ipv4` fields, an IPv6 address in the `…Ipv6` fields.
    pub address: Option<String>,
    #[schema(minimum = 0, maximum = 4294967295_i64)]
    pub asn: Option<i64>,
    #[schema(max_length = 256)]
    pub aso: Option<String>,
    pub location: Option<Location>,
    #[schema(max_length = 256)]
    pub name: Option<String>,
    #[schema(max_length = 256)]
    pub netmask: Option<String>,
    /// 1 for IPv4, 2 for IPv6, 0 if unknown.
    #[schema(minimum = 0, maximum = 2)]
    pub version: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(max_length = 256)]
    pub city: Option<String>,
    #[schema(pattern = "^[A-Za-z]{2}$")]
    pub country_iso: Option<String>,
    #[schema(max_length = 256)]
    pub state_iso: Option<String>,
    #[schema(max_length = 256)]
    pub zip: Option<String>,
}

/// Round-trip times of the WARP tunnel, in microseconds.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rtt {
    pub min_rtt_us: Option<Directions>,
    pub rtt_us: Option<Directions>,
    pub rtt_var_us: Option<Directions>,
}

/// A measurement split by direction; never negative. Kept as the number that was sent, so a
/// counter stays an integer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Directions {
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub downstream: Option<Number>,
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub upstream: Option<Number>,
}

/// Byte and packet counters of the WARP tunnel.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelStats {
    pub bytes_lost: Option<Directions>,
    pub bytes_received: Option<Directions>,
    pub bytes_retransmitted: Option<Directions>,
    pub bytes_sent: Option<Directions>,
    pub packets_lost: Option<Directions>,
    pub packets_received: Option<Directions>,
    pub packets_retransmitted: Option<Directions>,
    pub packets_sent: Option<Directions>,
    #[schema(value_type = Option<f64>, minimum = 0)]
    pub stats_window_ms: Option<Number>,
}

/// Longest free-text value accepted (names, SSIDs, subdomains...).
const MAX_TEXT: usize = 256;
/// Most applications listed in `cpuPctByApp` / `ramUsedPctByApp`.
const MAX_APPS: usize = 100;

fn fail(path: &str, message: impl Into<String>) -> Checked {
    Err((path.to_owned(), message.into()))
}

fn pct(path: &str, value: Option<f64>) -> Checked {
    match value {
        Some(v) if !(0.0..=100.0).contains(&v) => {
            fail(path, format!("{path} must be between 0 and 100"))
        }
        _ => Ok(()),
    }
}

fn range(path: &str, value: Option<i64>, min: i64, max: i64) -> Checked {
    match value {
        Some(v) if v < min || v > max => {
            fail(path, format!("{path} must be between {min} and {max}"))
        }
        _ => Ok(()),
    }
}

fn non_negative(path: &str, value: Option<i64>) -> Checked {
    range(path, value, 0, i64::MAX)
}

fn non_negative_n(path: &str, value: Option<&Number>) -> Checked {
    match value.and_then(Number::as_f64) {
        Some(v) if v < 0.0 => fail(path, format!("{path} must not be negative")),
        _ => Ok(()),
    }
}

/// Free text: at most [`MAX_TEXT`] characters, no control characters.
pub fn text(path: &str, value: Option<&str>) -> Checked {
    match value {
        Some(v) if v.chars().count() > MAX_TEXT => {
            fail(path, format!("{path} is longer than {MAX_TEXT} characters"))
        }
        Some(v) if v.chars().any(char::is_control) => {
            fail(path, format!("{path} contains control characters"))
        }
        _ => Ok(()),
    }
}

fn uuid_text(path: &str, value: Option<&str>) -> Checked {
    match value {
        Some(v) if uuid::Uuid::parse_str(v).is_err() => {
            fail(path, format!("{path} must be a UUID"))
        }
        _ => Ok(()),
    }
}

fn email(path: &str, value: Option<&str>) -> Checked {
    text(path, value)?;
    match value {
        Some(v)
            if !v
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.')) =>
        {
            fail(path, format!("{path} must be an email address"))
        }
        _ => Ok(()),
    }
}

impl Details {
    pub fn validate(&self) -> Checked {
        pct("batteryPct", self.battery_pct)?;
        pct("cpuPct", self.cpu_pct)?;
        pct("diskUsagePct", self.disk_usage_pct)?;
        pct("estimatedLossPct", self.estimated_loss_pct)?;
        pct("ramUsedPct", self.ram_used_pct)?;
        non_negative("batteryCycles", self.battery_cycles)?;
        non_negative("diskReadBps", self.disk_read_bps)?;
        non_negative("diskWriteBps", self.disk_write_bps)?;
        non_negative("handshakeLatencyMs", self.handshake_latency_ms)?;
        non_negative("networkRcvdBps", self.network_rcvd_bps)?;
        non_negative("networkSentBps", self.network_sent_bps)?;
        non_negative("ramAvailableKb", self.ram_available_kb)?;
        range("wifiStrengthDbm", self.wifi_strength_dbm, -150, 0)?;
        for (path, value) in [
            ("connectionType", &self.connection_type),
            ("deviceName", &self.device_name),
            ("dohSubdomain", &self.doh_subdomain),
            ("metal", &self.metal),
            ("networkSsid", &self.network_ssid),
            ("tunnelType", &self.tunnel_type),
        ] {
            text(path, value.as_deref())?;
        }
        uuid_text("deviceRegistration", self.device_registration.as_deref())?;
        uuid_text("registrationId", self.registration_id.as_deref())?;
        email("personEmail", self.person_email.as_deref())?;
        for (path, info, v6) in [
            ("deviceIpv4", &self.device_ipv4, false),
            ("deviceIpv6", &self.device_ipv6, true),
            ("gatewayIpv4", &self.gateway_ipv4, false),
            ("gatewayIpv6", &self.gateway_ipv6, true),
            ("ispIpv4", &self.isp_ipv4, false),
            ("ispIpv6", &self.isp_ipv6, true),
        ] {
            if let Some(info) = info {
                info.validate(path, v6)?;
            }
        }
        apps(
            "cpuPctByApp",
            self.cpu_pct_by_app.as_deref(),
            |a| (a.cpu_pct, a.name.as_deref()),
            "cpu_pct",
        )?;
        apps(
            "ramUsedPctByApp",
            self.ram_used_pct_by_app.as_deref(),
            |a| (a.ram_used_pct, a.name.as_deref()),
            "ram_used_pct",
        )?;
        if let Some(rtt) = &self.rtt {
            for (name, d) in [
                ("minRttUs", &rtt.min_rtt_us),
                ("rttUs", &rtt.rtt_us),
                ("rttVarUs", &rtt.rtt_var_us),
            ] {
                directions(&format!("rtt.{name}"), d.as_ref())?;
            }
        }
        if let Some(stats) = &self.tunnel_stats {
            stats.validate()?;
        }
        Ok(())
    }
}

fn apps<T>(
    path: &str,
    list: Option<&[T]>,
    fields: impl Fn(&T) -> (Option<f64>, Option<&str>),
    key: &str,
) -> Checked {
    let Some(list) = list else { return Ok(()) };
    if list.len() > MAX_APPS {
        return fail(
            path,
            format!("{path} lists more than {MAX_APPS} applications"),
        );
    }
    for (i, app) in list.iter().enumerate() {
        let (value, name) = fields(app);
        pct(&format!("{path}[{i}].{key}"), value)?;
        text(&format!("{path}[{i}].name"), name)?;
    }
    Ok(())
}

fn directions(path: &str, value: Option<&Directions>) -> Checked {
    if let Some(d) = value {
        non_negative_n(&format!("{path}.downstream"), d.downstream.as_ref())?;
        non_negative_n(&format!("{path}.upstream"), d.upstream.as_ref())?;
    }
    Ok(())
}

impl TunnelStats {
    fn validate(&self) -> Checked {
        for (name, d) in [
            ("bytesLost", &self.bytes_lost),
            ("bytesReceived", &self.bytes_received),
            ("bytesRetransmitted", &self.bytes_retransmitted),
            ("bytesSent", &self.bytes_sent),
            ("packetsLost", &self.packets_lost),
            ("packetsReceived", &self.packets_received),
            ("packetsRetransmitted", &self.packets_retransmitted),
            ("packetsSent", &self.packets_sent),
        ] {
            directions(&format!("tunnelStats.{name}"), d.as_ref())?;
        }
        non_negative_n("tunnelStats.statsWindowMs", self.stats_window_ms.as_ref())
    }
}

impl IpInfo {
    fn validate(&self, path: &str, v6: bool) -> Checked {
        if let Some(address) = &self.address {
            let ok = address.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6() == v6);
            if !ok {
                let family = if v6 { "IPv6" } else { "IPv4" };
                return fail(
                    &format!("{path}.address"),
                    format!("{path}.address must be an {family} address"),
                );
            }
        }
        range(&format!("{path}.asn"), self.asn, 0, u32::MAX.into())?;
        range(&format!("{path}.version"), self.version, 0, 2)?;
        for (name, value) in [
            ("aso", &self.aso),
            ("name", &self.name),
            ("netmask", &self.netmask),
        ] {
            text(&format!("{path}.{name}"), value.as_deref())?;
        }
        if let Some(loc) = &self.location {
            for (name, value) in [
                ("city", &loc.city),
                ("country_iso", &loc.country_iso),
                ("state_iso", &loc.state_iso),
                ("zip", &loc.zip),
            ] {
                text(&format!("{path}.location.{name}"), value.as_deref())?;
            }
            if let Some(iso) = &loc.country_iso {
                if iso.len() != 2 || !iso.chars().all(|c| c.is_ascii_alphabetic()) {
                    let p = format!("{path}.location.country_iso");
                    return fail(&p, format!("{p} must be a two-letter ISO 3166 code"));
                }
            }
        }
        Ok(())
    }
}
