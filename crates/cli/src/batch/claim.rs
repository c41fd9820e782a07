//! Exclusive claims on batch jobs, so that two processes given the same job
//! (a requeued array task beside a slow original, overlapping shards, the
//! same array submitted twice) never both compute and write it.
//!
//! A claim is the file `OUTPUT.claim` beside the job's output, created with
//! `O_CREAT | O_EXCL` (atomic on local file systems and NFSv4) and holding
//! one JSON line: host, pid, the process's start time (from `/proc`, so that
//! a reused pid is not mistaken for the holder), the claim's start time and
//! a random token. While a job runs, a thread refreshes the file's mtime
//! every `stale_after / 4`, so a long job keeps a fresh claim.
//!
//! A claim is stale when its process is gone (same host and same PID
//! namespace, checked through `/proc`) or, when its process cannot be
//! checked (another host, or another PID namespace: a container on this
//! host, told apart by the inode of `/proc/self/ns/pid` recorded in the
//! claim), when it was not refreshed for `stale_after` (the holder's node
//! died). A claim whose process provably runs here is never stale. A stale claim is taken over under a second lock,
//! `OUTPUT.claim.takeover` (also `O_EXCL`): its holder re-reads the claim,
//! removes it only if it is still the very claim judged stale, and creates
//! its own; a claimant racing in meanwhile simply wins. The takeover is
//! reported ([`Claim::took_over`]) for the log.

use neural_style_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a claim file says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Holder {
    /// The host name of the claiming process.
    pub(crate) host: String,
    /// Its process id.
    pub(crate) pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat`
    /// field 22), when known.
    pub(crate) proc_start: Option<u64>,
    /// The inode of the claiming process's PID namespace
    /// (`/proc/self/ns/pid`), when known: its pid means something here only
    /// in the same namespace (containers on one host share its name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) pid_ns: Option<u64>,
    /// Unix seconds when the claim was made.
    pub(crate) since: u64,
    /// A random token that tells two claims apart.
    pub(crate) token: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} since {}", self.pid, self.host, self.since)
    }
}

/// A claim file and what it said when read (`None`: empty or unreadable,
/// e.g. caught between its creation and its first write).
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// The claim found there, when readable.
    pub(crate) holder: Option<Holder>,
    bytes: Vec<u8>,
    modified: SystemTime,
}

/// The outcome of [`Claim::acquire`].
#[derive(Debug)]
pub(crate) enum Acquired {
    /// This process holds the claim.
    Mine(Claim),
    /// Another live process holds it (or is taking it over).
    Busy(Option<Holder>),
}

/// A claim this process holds; dropping it removes the file (if it is
/// still this process's).
#[derive(Debug)]
pub(crate) struct Claim {
    path: PathBuf,
    token: String,
    /// The stale claim this one replaced, and why it was stale.
    pub(crate) took_over: Option<(Option<Holder>, String)>,
    stop: Option<mpsc::Sender<()>>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// `OUTPUT.claim`, as the registry of written paths names it
/// (`neural_style::run::written`).
pub(crate) fn claim_path(output: &Path) -> PathBuf {
    neural_style::run::written::claim_path(output)
}

/// This machine's host name (the kernel's), or `HOSTNAME`, or `unknown`.
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks since boot.
pub(crate) fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The inode of this process's PID namespace (`/proc/self/ns/pid`).
pub(crate) fn pid_namespace() -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
    }
    #[cfg(not(unix))]
    None
}

/// Whether the holder's process runs, as far as this process can tell:
/// `Some(false)` only when its pid is provably one of ours (this host, this
/// PID namespace) and gone (or now belongs to a process started at another
/// time). A claim of another host or another PID namespace (a container on
/// this host), or one that does not say its namespace, is `None`: judged by
/// its heartbeat alone.
fn holder_alive(h: &Holder, this_host: &str) -> Option<bool> {
    if h.host != this_host || !Path::new("/proc/self/stat").exists() {
        return None;
    }
    if h.pid_ns.is_none() || h.pid_ns != pid_namespace() {
        return None;
    }
    match (proc_start(h.pid), h.proc_start) {
        (None, _) => Some(false),
        (Some(now), Some(then)) => Some(now == then),
        (Some(_), None) => Some(true),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source per process.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

fn read_claim(path: &Path) -> std::io::Result<Seen> {
    let bytes = std::fs::read(path)?;
    let modified = std::fs::metadata(path)?.modified()?;
    let holder = serde_json::from_slice(&bytes).ok();
    Ok(Seen {
        holder,
        bytes,
        modified,
    })
}

/// Why `seen` is stale, or `None` when it must be respected.
pub(crate) fn stale_reason(seen: &Seen, stale_after: Duration, this_host: &str) -> Option<String> {
    if let Some(h) = &seen.holder {
        match holder_alive(h, this_host) {
            Some(false) => return Some(format!("its process ({h}) is gone")),
            // Known to run (a hung holder is still a holder): never taken over.
            Some(true) => return None,
            None => {}
        }
    }
    let age = SystemTime::now()
        .duration_since(seen.modified)
        .unwrap_or_default();
    (age > stale_after).then(|| {
        format!(
            "not refreshed for {} s (limit {} s)",
            age.as_secs(),
            stale_after.as_secs()
        )
    })
}

/// Create `path` exclusively and write `bytes` into it; `Ok(false)` when it exists.
fn create_exclusive(path: &Path, bytes: &[u8]) -> Result<bool> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            let written = f.write_all(bytes).and_then(|()| f.sync_all());
            if let Err(e) = written {
                let _ = std::fs::remove_file(path);
                return Err(Error::io(path, e));
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// How long a takeover lock may exist before it is considered abandoned
/// (taking over is a read, a remove and a create: milliseconds).
const TAKEOVER_LOCK_STALE: Duration = Duration::from_secs(60);

impl Claim {
    /// Claim the job whose output is `output`, taking over a stale claim.
    pub(crate) fn acquire(output: &Path, stale_after: Duration) -> Result<Acquired> {
        let path = claim_path(output);
        let host = host_name();
        let pid = std::process::id();
        let holder = Holder {
            host: host.clone(),
            pid,
            proc_start: proc_start(pid),
            pid_ns: pid_namespace(),
            since: unix_now(),
            token: new_token(),
        };
        let mut line = serde_json::to_vec(&holder).expect("serialises");
        line.push(b'\n');
        let mut took_over = None;
        if !create_exclusive(&path, &line)? {
            let seen = match read_claim(&path) {
                Ok(s) => s,
                // Released between our create and our read: try once more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if create_exclusive(&path, &line)? {
                        return Ok(Acquired::Mine(Claim::hold(
                            path,
                            holder.token,
                            None,
                            stale_after,
                        )));
                    }
                    return Ok(Acquired::Busy(None));
                }
                Err(e) => return Err(Error::io(&path, e)),
            };
            let Some(reason) = stale_reason(&seen, stale_after, &host) else {
                return Ok(Acquired::Busy(seen.holder));
            };
            if !take_over(output, &path, &seen, &line)? {
                return Ok(Acquired::Busy(seen.holder));
            }
            took_over = Some((seen.holder, reason));
        }
        Ok(Acquired::Mine(Claim::hold(
            path,
            holder.token,
            took_over,
            stale_after,
        )))
    }

    fn hold(
        path: PathBuf,
        token: String,
        took_over: Option<(Option<Holder>, String)>,
        stale_after: Duration,
    ) -> Claim {
        let (stop, stopped) = mpsc::channel::<()>();
        let every = (stale_after / 4).max(Duration::from_millis(50));
        let (p, t) = (path.clone(), token.clone());
        let heartbeat = std::thread::spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                if holds(&p, &t) {
                    if let Ok(f) = std::fs::File::options().append(true).open(&p) {
                        let _ = f.set_modified(SystemTime::now());
                    }
                }
            }
        });
        Claim {
            path,
            token,
            took_over,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        }
    }

    /// Whether the claim file is still this one (it may have been taken
    /// over if this process looked dead to another host). Check before
    /// writing the output.
    pub(crate) fn still_held(&self) -> bool {
        holds(&self.path, &self.token)
    }
}

fn holds(path: &Path, token: &str) -> bool {
    read_claim(path)
        .ok()
        .and_then(|s| s.holder)
        .is_some_and(|h| h.token == token)
}

/// Replace the stale claim `seen` at `path` by `line`, under the takeover
/// lock. `Ok(false)`: someone else is taking over, or got it first.
fn take_over(output: &Path, path: &Path, seen: &Seen, line: &[u8]) -> Result<bool> {
    let lock = neural_style::run::written::takeover_path(output);
    if !create_exclusive(&lock, line)? {
        let abandoned = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > TAKEOVER_LOCK_STALE);
        if abandoned {
            let _ = std::fs::remove_file(&lock);
        }
        return Ok(false);
    }
    let result = (|| {
        // Only the holder of the takeover lock removes claims, and while a
        // claim exists nobody else can create one: if it is still the one
        // judged stale, removing it cannot remove anyone's fresh claim.
        match read_claim(path) {
            Ok(now) if now.bytes == seen.bytes && now.modified == seen.modified => {
                std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            }
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        create_exclusive(path, line)
    })();
    let _ = std::fs::remove_file(&lock);
    result
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        if self.still_held() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    const LONG: Duration = Duration::from_secs(3600);

    fn mine(a: Acquired) -> Claim {
        match a {
            Acquired::Mine(c) => c,
            Acquired::Busy(h) => panic!("busy: {h:?}"),
        }
    }

    #[test]
    fn a_claim_is_exclusive_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a.png");
        let c = mine(Claim::acquire(&out, LONG).unwrap());
        assert_eq!(c.path, dir.path().join("a.png.claim"));
        assert!(c.took_over.is_none());
        let text = std::fs::read_to_string(&c.path).unwrap();
        let h: Holder = serde_json::from_str(&text).unwrap();
        assert_eq!((h.pid, &h.host[..]), (std::process::id(), &host_name()[..]));
        assert!(h.proc_start.is_some(), "this test runs on Linux with /proc");
        // The same process asking again is another claimant: busy (it is alive).
        match Claim::acquire(&out, LONG).unwrap() {
            Acquired::Busy(Some(b)) => assert_eq!(b.token, h.token),
            other => panic!("{other:?}"),
        }
        assert!(c.still_held());
        drop(c);
        assert!(!dir.path().join("a.png.claim").exists());
        drop(mine(Claim::acquire(&out, LONG).unwrap()));
    }

    fn write_holder(path: &Path, h: &Holder) {
        std::fs::write(path, serde_json::to_vec(h).unwrap()).unwrap();
    }

    #[test]
    fn a_dead_process_claim_on_this_host_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("b.png");
        // A process that has exited: its pid is free (or reused with another start time).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = proc_start(pid);
        child.wait().unwrap();
        let dead = Holder {
            host: host_name(),
            pid,
            proc_start: start.or(Some(1)),
            pid_ns: pid_namespace(),
            since: unix_now(),
            token: "dead".into(),
        };
        write_holder(&claim_path(&out), &dead);
        let c = mine(Claim::acquire(&out, LONG).unwrap());
        let (old, why) = c.took_over.clone().expect("a takeover");
        assert_eq!(old, Some(dead));
        assert!(why.contains("is gone"), "{why}");
        assert!(c.still_held());
        assert!(!dir.path().join("b.png.claim.takeover").exists());
    }

    #[test]
    fn a_claim_from_another_pid_namespace_is_judged_by_its_heartbeat_alone() {
        // A live holder in another PID namespace on this host (a container):
        // `unshare --pid --fork` runs a shell as pid 1 of a new namespace.
        let mut child = match std::process::Command::new("unshare")
            .args(["--pid", "--fork", "sh", "-c"])
            .arg("readlink /proc/self/ns/pid; echo $$; exec sleep 60")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                return neural_style_core::testing::skip::skip(format!(
                    "`unshare` cannot run here ({e})"
                ))
            }
        };
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut ns = String::new();
        let mut pid = String::new();
        use std::io::BufRead;
        let _ = out.read_line(&mut ns);
        let _ = out.read_line(&mut pid);
        let inode = ns
            .trim()
            .strip_prefix("pid:[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<u64>().ok());
        let (Some(inode), Ok(pid)) = (inode, pid.trim().parse::<u32>()) else {
            let _ = child.kill();
            let _ = child.wait();
            return neural_style_core::testing::skip::skip(format!(
                "`unshare --pid --fork` needs privileges this test lacks (it said {ns:?})"
            ));
        };
        assert_ne!(Some(inode), pid_namespace());
        let dir = tempfile::tempdir().unwrap();
        let out_png = dir.path().join("ns.png");
        // Its pid (1 there) is, here, another process started at another
        // time: judged by the pid, the claim looked "gone" and was taken over.
        let theirs = Holder {
            host: host_name(),
            pid,
            proc_start: Some(u64::MAX),
            pid_ns: Some(inode),
            since: unix_now(),
            token: "container".into(),
        };
        let path = claim_path(&out_png);
        write_holder(&path, &theirs);
        let busy = Claim::acquire(&out_png, LONG);
        let _ = child.kill();
        let _ = child.wait();
        match busy.unwrap() {
            Acquired::Busy(Some(h)) => assert_eq!(h, theirs),
            Acquired::Busy(None) => panic!("unreadable claim"),
            Acquired::Mine(c) => panic!(
                "a live claim of a container was taken over: {:?}",
                c.took_over
            ),
        }
        // The same claim without a heartbeat for longer than the limit: stale.
        let seen = read_claim(&path).unwrap();
        assert_eq!(stale_reason(&seen, LONG, &host_name()), None);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(7200))
            .unwrap();
        let seen = read_claim(&path).unwrap();
        let why = stale_reason(&seen, LONG, &host_name()).unwrap();
        assert!(why.contains("not refreshed"), "{why}");
    }

    #[test]
    fn a_live_claim_is_respected_and_an_old_one_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("c.png");
        // Another host: liveness unknown, only the age counts.
        let remote = Holder {
            host: "elsewhere-node-17".into(),
            pid: 4242,
            proc_start: Some(7),
            pid_ns: None,
            since: unix_now(),
            token: "remote".into(),
        };
        let path = claim_path(&out);
        write_holder(&path, &remote);
        match Claim::acquire(&out, LONG).unwrap() {
            Acquired::Busy(Some(h)) => assert_eq!(h, remote),
            other => panic!("{other:?}"),
        }
        // Not refreshed for two hours.
        let old = SystemTime::now() - Duration::from_secs(7200);
        let age = || {
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(old)
                .unwrap();
        };
        age();
        let c = mine(Claim::acquire(&out, LONG).unwrap());
        let (prev, why) = c.took_over.clone().unwrap();
        assert_eq!(prev, Some(remote));
        assert!(why.contains("not refreshed for 7200 s"), "{why}");
        // A live process on this host (this test) is never stale, however old.
        let seen = read_claim(&path).unwrap();
        assert_eq!(stale_reason(&seen, LONG, &host_name()), None);
        age();
        let seen = read_claim(&path).unwrap();
        assert_eq!(
            stale_reason(&seen, Duration::from_secs(1), &host_name()),
            None
        );
        assert!(stale_reason(&seen, Duration::from_secs(1), "another-host").is_some());
    }

    #[test]
    fn the_heartbeat_keeps_a_long_claim_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("d.png");
        let limit = Duration::from_millis(400);
        let c = mine(Claim::acquire(&out, limit).unwrap());
        std::thread::sleep(Duration::from_millis(1200));
        // Three limits later, another claimant (same host, so the pid is live
        // anyway — judge by age alone with a foreign host name).
        let seen = read_claim(&c.path).unwrap();
        assert_eq!(stale_reason(&seen, limit, "another-host"), None);
        match Claim::acquire(&out, limit).unwrap() {
            Acquired::Busy(_) => {}
            Acquired::Mine(_) => panic!("a refreshed claim was taken over"),
        }
    }

    #[test]
    fn racing_claimants_get_exactly_one_claim() {
        for stale in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let out = Arc::new(dir.path().join("e.png"));
            if stale {
                // Everyone races to take over the same stale claim.
                let dead = Holder {
                    host: "gone-node".into(),
                    pid: 1,
                    proc_start: None,
                    pid_ns: None,
                    since: 0,
                    token: "old".into(),
                };
                let p = claim_path(&out);
                write_holder(&p, &dead);
                std::fs::File::options()
                    .append(true)
                    .open(&p)
                    .unwrap()
                    .set_modified(SystemTime::now() - Duration::from_secs(7200))
                    .unwrap();
            }
            let n = 8;
            let barrier = Arc::new(Barrier::new(n));
            let (tx, rx) = mpsc::channel();
            let threads: Vec<_> = (0..n)
                .map(|_| {
                    let (out, barrier, tx) = (out.clone(), barrier.clone(), tx.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        let got = Claim::acquire(&out, LONG).unwrap();
                        let won = matches!(got, Acquired::Mine(_));
                        tx.send(won).unwrap();
                        // Hold it until every thread has tried.
                        barrier.wait();
                        drop(got);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            drop(tx);
            let winners = rx.iter().filter(|w| *w).count();
            assert_eq!(winners, 1, "stale claim: {stale}");
            assert!(!claim_path(&out).exists());
        }
    }

    #[test]
    fn a_claim_taken_over_is_not_held_and_not_removed_by_its_old_owner() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("f.png");
        let c = mine(Claim::acquire(&out, LONG).unwrap());
        let other = Holder {
            host: "other".into(),
            pid: 9,
            proc_start: None,
            pid_ns: None,
            since: unix_now(),
            token: "theirs".into(),
        };
        write_holder(&c.path, &other);
        assert!(!c.still_held());
        let p = c.path.clone();
        drop(c);
        let h: Holder = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
        assert_eq!(h.token, "theirs");
    }
}
