//! The text exposition (format 0.0.4) of every metric.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::{dns, http, import, secondaries, REASONS, SIGNATURES};
use crate::health::Health;

/// A label value, escaped as the format says (backslash, double quote, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", esc(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Every metric of this server, now. Reads atomics, the published catalog and the health
/// observer's figures; never SQLite, never the zone manager.
pub fn render(health: &Health) -> String {
    let mut o = Out(String::with_capacity(16 * 1024));
    let now = health.mgr.now() as i64;

    o.family("mxdns_build_info", "gauge", "The running binary.");
    o.sample(
        "mxdns_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );

    o.family(
        "mxdns_dns_queries_total",
        "counter",
        "DNS queries answered, by transport, RCODE (header) and query type.",
    );
    for (t, r, q, n) in dns::queries() {
        o.sample(
            "mxdns_dns_queries_total",
            &[
                ("transport", dns::TRANSPORTS[t]),
                ("rcode", dns::RCODES[r]),
                ("qtype", dns::QTYPES[q].1),
            ],
            n,
        );
    }
    o.family(
        "mxdns_dns_truncated_total",
        "counter",
        "Answers sent with TC=1 (cut by whole RRsets to fit the UDP size).",
    );
    for (t, n) in dns::truncated().iter().enumerate() {
        o.sample(
            "mxdns_dns_truncated_total",
            &[("transport", dns::TRANSPORTS[t])],
            n,
        );
    }

    o.family(
        "mxdns_signatures_total",
        "counter",
        "RRSIGs made, by reason (build, change, refresh, rollover).",
    );
    for (i, reason) in REASONS.iter().enumerate() {
        o.sample(
            "mxdns_signatures_total",
            &[("reason", reason)],
            SIGNATURES[i].load(Relaxed),
        );
    }

    let report = health.report();
    o.family(
        "mxdns_healthy",
        "gauge",
        "1 when GET /v1/health answers 200, else 0.",
    );
    o.sample("mxdns_healthy", &[], u8::from(report.ok));

    // per zone: what health reports (published catalog, refresher's expiry), and the keys
    let zones = report.body["zones"].as_array().cloned().unwrap_or_default();
    o.family("mxdns_zone_serial", "gauge", "The SOA serial served.");
    for z in &zones {
        if let (Some(name), Some(s)) = (z["zone"].as_str(), z["serial"].as_u64()) {
            o.sample("mxdns_zone_serial", &[("zone", name)], s);
        }
    }
    o.family(
        "mxdns_zone_names",
        "gauge",
        "Owner names in the served zone.",
    );
    for z in &zones {
        if let (Some(name), Some(n)) = (z["zone"].as_str(), z["names"].as_u64()) {
            o.sample("mxdns_zone_names", &[("zone", name)], n);
        }
    }
    o.family(
        "mxdns_zone_signature_expiry_earliest_timestamp_seconds",
        "gauge",
        "The earliest RRSIG expiration of the zone after the last refresh pass (unix time).",
    );
    let expiries = health.mgr.progress.earliest_expiry();
    let origins = health.mgr.config().all_zones().unwrap_or_default();
    for (origin, e) in origins.iter().zip(expiries) {
        if e != 0 {
            o.sample(
                "mxdns_zone_signature_expiry_earliest_timestamp_seconds",
                &[("zone", &origin.to_ascii())],
                e,
            );
        }
    }
    let keys = health.zone_keys();
    o.family(
        "mxdns_zone_next_key_event_seconds",
        "gauge",
        "Seconds until the zone's next scheduled key step (negative: overdue; the observer looks once a minute).",
    );
    for z in &keys {
        if let Some(t) = z.next {
            o.sample(
                "mxdns_zone_next_key_event_seconds",
                &[("zone", &z.zone)],
                t as i64 - now,
            );
        }
    }
    o.family(
        "mxdns_zone_keys",
        "gauge",
        "Keys of the zone by role and state.",
    );
    for z in &keys {
        let mut counts = std::collections::BTreeMap::<(&str, &str), u32>::new();
        for k in &z.keys {
            *counts.entry(*k).or_default() += 1;
        }
        for ((role, state), n) in counts {
            o.sample(
                "mxdns_zone_keys",
                &[("zone", &z.zone), ("role", role), ("state", state)],
                n,
            );
        }
    }

    let f = &report.body["follower"];
    o.family(
        "mxdns_follower_lag_entries",
        "gauge",
        "Change-log entries in the store not yet served.",
    );
    o.sample(
        "mxdns_follower_lag_entries",
        &[],
        f["behindEntries"].as_u64().unwrap_or(0),
    );
    o.family(
        "mxdns_follower_lag_seconds",
        "gauge",
        "Age of the oldest change in the store not yet served.",
    );
    o.sample(
        "mxdns_follower_lag_seconds",
        &[],
        f["behindSeconds"].as_u64().unwrap_or(0),
    );

    let secs = secondaries::all();
    let current = health.mgr.catalog.load();
    o.family(
        "mxdns_secondary_notify_serial",
        "gauge",
        "The last serial the secondary acknowledged a NOTIFY for.",
    );
    for ((zone, sec), st) in &secs {
        if let Some((s, _)) = st.notified {
            o.sample(
                "mxdns_secondary_notify_serial",
                &[("zone", zone), ("secondary", sec)],
                s,
            );
        }
    }
    o.family(
        "mxdns_secondary_transfer_serial",
        "gauge",
        "The serial of the last zone transfer (AXFR or IXFR) sent to the secondary.",
    );
    for ((zone, sec), st) in &secs {
        if let Some((s, _)) = st.transferred {
            o.sample(
                "mxdns_secondary_transfer_serial",
                &[("zone", zone), ("secondary", sec)],
                s,
            );
        }
    }
    o.family(
        "mxdns_secondary_transfer_timestamp_seconds",
        "gauge",
        "When the last zone transfer to the secondary was sent (unix time).",
    );
    for ((zone, sec), st) in &secs {
        if let Some((_, t)) = st.transferred {
            o.sample(
                "mxdns_secondary_transfer_timestamp_seconds",
                &[("zone", zone), ("secondary", sec)],
                t,
            );
        }
    }
    o.family(
        "mxdns_secondary_serial_lag",
        "gauge",
        "Serial increments the secondary is behind the served serial (by its last transfer; serial arithmetic).",
    );
    for ((zone, sec), st) in &secs {
        let served = hickory_proto::rr::Name::from_ascii(zone)
            .ok()
            .and_then(|n| current.get(&n).map(|z| z.serial()));
        if let (Some(served), Some((s, _))) = (served, st.transferred) {
            o.sample(
                "mxdns_secondary_serial_lag",
                &[("zone", zone), ("secondary", sec)],
                (served.wrapping_sub(s) as i32).max(0),
            );
        }
    }
    drop(current);

    {
        let r = http::REQUESTS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        o.family(
            "mxdns_api_requests_total",
            "counter",
            "API requests by matched route, method and status.",
        );
        for ((route, method, status), n) in &r.counts {
            o.sample(
                "mxdns_api_requests_total",
                &[
                    ("route", route),
                    ("method", method),
                    ("status", &status.to_string()),
                ],
                n,
            );
        }
        o.family(
            "mxdns_api_request_duration_seconds",
            "histogram",
            "API request latency until the response head, by matched route.",
        );
        for (route, h) in &r.latency {
            let mut cum = 0;
            for (b, n) in http::BUCKETS.iter().zip(h.buckets) {
                cum += n;
                o.sample(
                    "mxdns_api_request_duration_seconds_bucket",
                    &[("route", route), ("le", &b.to_string())],
                    cum,
                );
            }
            o.sample(
                "mxdns_api_request_duration_seconds_bucket",
                &[("route", route), ("le", "+Inf")],
                h.count,
            );
            o.sample(
                "mxdns_api_request_duration_seconds_sum",
                &[("route", route)],
                h.sum,
            );
            o.sample(
                "mxdns_api_request_duration_seconds_count",
                &[("route", route)],
                h.count,
            );
        }
    }

    o.family(
        "mxdns_import_running",
        "gauge",
        "Bulk imports (POST /v1/import) running now.",
    );
    o.sample("mxdns_import_running", &[], import::RUNNING.load(Relaxed));
    o.family(
        "mxdns_import_domains_done",
        "gauge",
        "Domains done of the running (or last) bulk import.",
    );
    o.sample("mxdns_import_domains_done", &[], import::DONE.load(Relaxed));
    o.family(
        "mxdns_import_domains",
        "gauge",
        "Domains in the running (or last) bulk import.",
    );
    o.sample("mxdns_import_domains", &[], import::TOTAL.load(Relaxed));
    o.family(
        "mxdns_imports_finished_total",
        "counter",
        "Bulk imports finished (or failed) since the start.",
    );
    o.sample(
        "mxdns_imports_finished_total",
        &[],
        import::FINISHED.load(Relaxed),
    );

    // the provider's own SMTP endpoints, as the last probe saw them
    let endpoints = health.probes.all();
    o.family(
        "mxdns_dane_endpoint_up",
        "gauge",
        "1 when the last probe of a [dane.endpoints] endpoint completed STARTTLS, else 0.",
    );
    for f in &endpoints {
        let l = [
            ("partition", f.partition.as_str()),
            ("endpoint", f.endpoint.as_str()),
        ];
        o.sample("mxdns_dane_endpoint_up", &l, u8::from(f.error.is_none()));
    }
    o.family(
        "mxdns_dane_endpoint_tlsa_match",
        "gauge",
        "1 when a TLSA record published now authenticates the certificate the endpoint presented, else 0 (DANE senders defer its mail).",
    );
    for f in endpoints.iter().filter(|f| f.error.is_none()) {
        let l = [
            ("partition", f.partition.as_str()),
            ("endpoint", f.endpoint.as_str()),
        ];
        o.sample(
            "mxdns_dane_endpoint_tlsa_match",
            &l,
            u8::from(f.matches_tlsa),
        );
    }
    o.family(
        "mxdns_dane_endpoint_cert_not_after_seconds",
        "gauge",
        "notAfter (unix seconds) of the certificate the endpoint presented.",
    );
    for f in &endpoints {
        if let Some(t) = f.not_after_unix {
            let l = [
                ("partition", f.partition.as_str()),
                ("endpoint", f.endpoint.as_str()),
            ];
            o.sample("mxdns_dane_endpoint_cert_not_after_seconds", &l, t);
        }
    }

    o.family(
        "mxdns_task_restarts_total",
        "counter",
        "Restarts of a supervised task (after a panic or an unexpected end).",
    );
    let tasks = health.board.tasks();
    for t in tasks.iter() {
        o.sample(
            "mxdns_task_restarts_total",
            &[("task", &t.name), ("plane", t.plane)],
            t.restarts(),
        );
    }
    o.0
}
