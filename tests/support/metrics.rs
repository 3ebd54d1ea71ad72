//! Reading what `metrics-util`'s debugging recorder holds, by name, sorted labels and value.

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, Snapshotter};

/// Recorded metrics by name and sorted labels.
pub type Values = HashMap<MetricKey, DebugValue>;
pub type MetricKey = (String, Vec<(String, String)>);

/// Every recorded metric by name and sorted labels.
pub fn values(snapshotter: &Snapshotter) -> Values {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let mut labels: Vec<_> = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            labels.sort();
            ((key.key().name().to_owned(), labels), value)
        })
        .collect()
}

pub fn key(name: &str, labels: &[(&str, &str)]) -> MetricKey {
    let mut labels: Vec<_> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    labels.sort();
    (name.to_owned(), labels)
}

/// The counter `name` with exactly `labels`; fails when it was never recorded.
#[track_caller]
pub fn counter(values: &Values, name: &str, labels: &[(&str, &str)]) -> u64 {
    match values.get(&key(name, labels)) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?} in {values:#?}"),
    }
}

/// The gauge `name` with exactly `labels`; fails when it was never recorded.
#[track_caller]
pub fn gauge(values: &Values, name: &str, labels: &[(&str, &str)]) -> f64 {
    match values.get(&key(name, labels)) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{name} {labels:?}: {other:?} in {values:#?}"),
    }
}
