//! `batch --json`: one JSON object per line on stdout for each job event, so
//! that a scheduler's log collector can follow a batch:
//!
//! ```json
//! {"event":"claimed","job":3,"output":"out/a_x.png","host":"node7","pid":4711,"time":1767000000.5}
//! {"event":"started","job":3,"output":"out/a_x.png","host":"node7","pid":4711,"time":1767000000.6,"resumed_from":200}
//! {"event":"checkpoint","job":3,"output":"out/a_x.png","host":"node7","pid":4711,"time":1767000030.1,"iteration":250,"loss":1.2e6}
//! {"event":"written","job":3,"output":"out/a_x.png","host":"node7","pid":4711,"time":1767000061.0,"iteration":500,"loss":9.8e5,"seconds":60.4}
//! {"event":"skipped","job":4,"output":"out/a_y.png","host":"node7","pid":4711,"time":1767000061.0,"reason":"claimed by pid 12 on node3 since 1766999990"}
//! {"event":"failed","job":5,"output":"out/b_x.png","host":"node7","pid":4711,"time":1767000062.0,"reason":"…"}
//! {"event":"summary","host":"node7","pid":4711,"time":1767000062.1,"shard":"1/4","jobs":3,"written":1,"skipped":1,"failed":1,"interrupted":false}
//! ```
//!
//! The summary closes a batch: `jobs` is the number of jobs of this shard,
//! and `written + skipped + failed = jobs` unless `interrupted`.
//!
//! `time` is Unix seconds; the optional fields appear only where they mean
//! something.

use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
/// What happened to a job.
pub(crate) enum Kind {
    /// This process claimed the job.
    Claimed,
    /// The job started (or resumed).
    Started,
    /// The job wrote a checkpoint.
    Checkpoint,
    /// The job wrote its output.
    Written,
    /// The job failed (the batch goes on).
    Failed,
    /// The job was skipped.
    Skipped,
}

/// The optional parts of an event.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Detail {
    /// Iterations done (global, across scales).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) iteration: Option<usize>,
    /// The best loss so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Seconds the job took.
    pub(crate) seconds: Option<f64>,
    /// The iteration a resumed job continued from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resumed_from: Option<usize>,
    /// Why skipped or failed; for `claimed`, the stale claim taken over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
}

#[derive(Serialize)]
struct Line<'a> {
    event: Kind,
    job: usize,
    output: &'a Path,
    host: &'a str,
    pid: u32,
    time: f64,
    #[serde(flatten)]
    detail: &'a Detail,
}

impl Detail {
    /// Just a reason (an error, for `failed`).
    pub(crate) fn reason(why: &dyn std::fmt::Display) -> Detail {
        Detail {
            reason: Some(why.to_string()),
            ..Detail::default()
        }
    }
}

/// The last line of a batch.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Summary {
    /// `I/N`, or `None` for every job.
    pub(crate) shard: Option<String>,
    /// Jobs of this shard.
    pub(crate) jobs: usize,
    /// Jobs written.
    pub(crate) written: usize,
    /// Already there, or claimed by another process.
    pub(crate) skipped: usize,
    /// Jobs failed.
    pub(crate) failed: usize,
    /// A stop signal ended the batch.
    pub(crate) interrupted: bool,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    event: &'static str,
    host: &'a str,
    pid: u32,
    time: f64,
    #[serde(flatten)]
    summary: &'a Summary,
}

fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn write_line(out: &Mutex<Box<dyn Write + Send>>, text: &str) {
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// Where events go: nowhere (no `--json`) or one line each to a writer.
pub(crate) struct Events {
    out: Option<Mutex<Box<dyn Write + Send>>>,
    host: String,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("enabled", &self.out.is_some())
            .finish()
    }
}

impl Events {
    /// No events.
    pub(crate) fn off() -> Events {
        Events {
            out: None,
            host: String::new(),
        }
    }

    /// Events as JSON lines on `out` (stdout for `batch --json`).
    pub(crate) fn to(out: Box<dyn Write + Send>) -> Events {
        Events {
            out: Some(Mutex::new(out)),
            host: super::claim::host_name(),
        }
    }

    /// Write one event line (flushed at once: the collector follows it live).
    /// A failing event stream (closed pipe) does not stop the batch.
    pub(crate) fn emit(&self, event: Kind, job: usize, output: &Path, detail: &Detail) {
        let Some(out) = &self.out else {
            return;
        };
        let line = Line {
            event,
            job,
            output,
            host: &self.host,
            pid: std::process::id(),
            time: unix_time(),
            detail,
        };
        let text = serde_json::to_string(&line).expect("an event serialises");
        write_line(out, &text);
    }

    /// The batch's last line.
    pub(crate) fn summary(&self, summary: &Summary) {
        let Some(out) = &self.out else {
            return;
        };
        let line = SummaryLine {
            event: "summary",
            host: &self.host,
            pid: std::process::id(),
            time: unix_time(),
            summary,
        };
        let text = serde_json::to_string(&line).expect("a summary serialises");
        write_line(out, &text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_json_object_per_line_with_only_meaningful_fields() {
        let buf = Shared::default();
        let ev = Events::to(Box::new(buf.clone()));
        ev.emit(Kind::Claimed, 3, Path::new("out/a.png"), &Detail::default());
        ev.emit(
            Kind::Written,
            3,
            Path::new("out/a.png"),
            &Detail {
                iteration: Some(500),
                loss: Some(1.5),
                seconds: Some(2.0),
                ..Detail::default()
            },
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "claimed");
        assert_eq!(lines[0]["job"], 3);
        assert_eq!(lines[0]["output"], "out/a.png");
        assert_eq!(lines[0]["pid"], std::process::id());
        assert!(lines[0].get("iteration").is_none() && lines[0].get("reason").is_none());
        assert_eq!(lines[1]["event"], "written");
        assert_eq!(lines[1]["iteration"], 500);
        assert!(lines[1]["time"].as_f64().unwrap() > 1.7e9);
        ev.summary(&Summary {
            shard: Some("1/4".into()),
            jobs: 3,
            written: 2,
            skipped: 1,
            ..Summary::default()
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["event"], "summary");
        assert_eq!(
            (last["jobs"].as_u64(), last["written"].as_u64()),
            (Some(3), Some(2))
        );
        assert_eq!(last["shard"], "1/4");
        // Off: nothing, no error.
        Events::off().emit(Kind::Failed, 0, Path::new("x"), &Detail::default());
    }
}
