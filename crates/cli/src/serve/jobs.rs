//! The job queue, the painting thread and the gallery.
//!
//! One job paints at a time (the CPU is the limit), on a thread of its own,
//! through the library's [`Painter`] — the command line's engine and `prepare`
//! path, so a job painted here gives the command line's image. Its iteration
//! callback publishes progress (every iteration) and a preview PNG (every
//! `--preview-every` iterations) and stops the run when the job's stop flag
//! is set. Every finished or stopped result goes to the gallery, which keeps
//! the newest `--max-results` (and `--max-results-mib`) in memory (with
//! `--gallery DIR`, every result is also saved there).
//!
//! Bounded: at most `--max-queue` jobs wait, at most `--max-queue-per-client`
//! of one client (browser session) wait or paint; a job paints at most
//! `--max-iterations` iterations, at most `--max-size` pixels a side (output,
//! every scale, the style images). A result is kept in memory first: a full
//! disk or a lack of file descriptors cannot lose it.

use super::events::{Event, Hub};
use super::uploads::{self, Upload};
use super::ServeArgs;
use neural_style::{Options, Painter, Painting, Vgg19Weights};
use neural_style_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// The options a page may not set: the server's own (its flags).
const SERVER_KEYS: [(&str, &str); 4] = [
    ("backend", "--backend"),
    ("device", "--device"),
    ("threads", "--threads"),
    ("weights", "--weights"),
];

/// What paints: the backend, the weights (loaded once) and the server's limits.
pub(crate) struct Engine {
    backend: Option<String>,
    device: Option<String>,
    /// The server's settings, merged into every job's options.
    fixed: Map<String, Value>,
    weights: Arc<Vgg19Weights>,
    max_size: u32,
    max_iterations: usize,
    preview_every: usize,
    limits: Limits,
}

/// The queue's and the gallery's bounds.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_queue: usize,
    max_queue_per_client: usize,
    max_results: usize,
    max_results_bytes: u64,
}

impl Engine {
    /// Checks the backend and loads the weights (fetching them if needed).
    pub(crate) fn new(args: &ServeArgs, say: &dyn Fn(&str)) -> Result<Engine> {
        let mut fixed = Map::new();
        if let Some(b) = &args.backend {
            Painter::new(b)?;
            fixed.insert("backend".into(), b.clone().into());
        }
        if let Some(d) = &args.device {
            fixed.insert("device".into(), d.clone().into());
        }
        if let Some(t) = args.threads {
            fixed.insert("threads".into(), t.into());
        }
        if let Some(w) = &args.weights {
            fixed.insert("weights".into(), w.to_string_lossy().into_owned().into());
        }
        let options = from_json(fixed.clone()).map_err(|m| Error::config("serve", m))?;
        say("loading the VGG19 weights");
        let weights = Arc::new(neural_style::load_weights(&options)?);
        Ok(Engine {
            backend: args.backend.clone(),
            device: args.device.clone(),
            fixed,
            weights,
            max_size: args.max_size,
            max_iterations: args.max_iterations,
            preview_every: args.preview_every,
            limits: Limits {
                max_queue: args.max_queue,
                max_queue_per_client: args.max_queue_per_client,
                max_results: args.max_results,
                max_results_bytes: args.max_results_mib.saturating_mul(1 << 20),
            },
        })
    }

    /// A page's options made into a job's: the server's settings added, then
    /// the options model's validation and the server's size limit. The error
    /// is a message for the page.
    pub(crate) fn options(&self, page: &Map<String, Value>) -> Result<Options, String> {
        let mut map = page.clone();
        for (key, flag) in SERVER_KEYS {
            if map.contains_key(key) {
                return Err(format!(
                    "`{key}` is chosen by the server (start it with `neural-style serve {flag} …`)"
                ));
            }
        }
        map.extend(self.fixed.clone());
        let o = from_json(map)?;
        o.validate().map_err(|e| e.to_string())?;
        let max = self.max_size;
        let too_large = |what: &str, s: u64| {
            format!(
                "{what} {s} is more than this server allows ({max} px: `neural-style serve --max-size`)"
            )
        };
        let scales = o.scales().map_err(|e| e.to_string())?;
        let mut largest = 0u32;
        for &(s, _) in std::iter::once(&(o.size, 0)).chain(&scales) {
            if s > max {
                return Err(too_large("size", s.into()));
            }
            largest = largest.max(s);
        }
        if let Some(s) = o.style_size.filter(|&s| s > max) {
            return Err(too_large("style-size", s.into()));
        }
        // A style image has the content's pixel count times style-scale: at
        // most largest² × style-scale, which must fit in max².
        if o.style_size.is_none()
            && f64::from(largest) * f64::from(largest) * o.style_scale
                > f64::from(max) * f64::from(max)
        {
            return Err(format!(
                "style-scale {} makes the style images larger than this server allows ({max}×{max} pixels at size {largest}: `neural-style serve --max-size`)",
                o.style_scale
            ));
        }
        let iterations = scales
            .iter()
            .fold(0usize, |n, &(_, its)| n.saturating_add(its));
        if iterations > self.max_iterations {
            return Err(format!(
                "iterations: {iterations} in all is more than this server allows ({}: `neural-style serve --max-iterations`)",
                self.max_iterations
            ));
        }
        Ok(o)
    }

    /// Paints one job on this thread.
    fn paint(&self, job: &Job, hub: &Hub) -> Result<Painting> {
        let mut painter = match &self.backend {
            Some(b) => Painter::new(b)?,
            None => Painter::with_default_backend(),
        };
        if let Some(d) = &self.device {
            painter = painter.device(d);
        }
        painter = painter.content(job.content.path.as_path())?;
        for s in &job.styles {
            painter = painter.style(s.path.as_path())?;
        }
        if let Some((_, path)) = &job.init {
            painter = painter.init_image(path.as_path())?;
        }
        let every = self.preview_every;
        painter
            .options(job.options.clone())
            .weights(self.weights.clone())
            .on_iteration(|p| {
                let loss = [p.loss.content, p.loss.style, p.loss.tv, p.loss.total];
                let elapsed = p.elapsed.as_secs_f64();
                {
                    let mut live = job.live.lock().expect("job lock");
                    live.iteration = p.iteration;
                    live.of = p.of;
                    live.elapsed = elapsed;
                    live.history.push((p.iteration, loss));
                }
                hub.send(Event::new(
                    "progress",
                    &serde_json::json!({
                        "job": job.id, "iteration": p.iteration, "of": p.of,
                        "elapsed": elapsed, "loss": loss,
                    }),
                ));
                if p.iteration == 1 || p.iteration % every == 0 || p.iteration == p.of {
                    if let Ok(img) = p.preview() {
                        let png = uploads::encode(&img, image::ImageFormat::Png);
                        job.live.lock().expect("job lock").preview =
                            Some((p.iteration, Arc::new(png)));
                        hub.send(Event::new(
                            "preview",
                            &serde_json::json!({"job": job.id, "iteration": p.iteration}),
                        ));
                    }
                }
                if job.stop.load(Ordering::SeqCst) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .paint()
    }
}

fn from_json(map: Map<String, Value>) -> Result<Options, String> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            format!("options: {inner}")
        } else {
            format!("options: {path}: {inner}")
        }
    })
}

/// A page's request: uploads by id, the options, and for a comparison the
/// style strengths (style weight / content weight) to paint side by side.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobRequest {
    pub(crate) content: u64,
    pub(crate) styles: Vec<u64>,
    #[serde(default)]
    pub(crate) init: Option<InitRef>,
    #[serde(default)]
    pub(crate) options: Map<String, Value>,
    #[serde(default)]
    pub(crate) strengths: Vec<f64>,
}

/// The starting image: an upload or a gallery result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum InitRef {
    Upload(u64),
    Gallery(u64),
}

/// Most strengths one comparison may paint.
pub(crate) const MAX_STRENGTHS: usize = 8;

/// Most style images of one job.
pub(crate) const MAX_STYLES: usize = 8;

/// Why a request was not queued: a bad request, or a full queue (429).
#[derive(Debug)]
pub(crate) enum Refused {
    Bad(String),
    Busy(String),
}

impl From<String> for Refused {
    fn from(m: String) -> Refused {
        Refused::Bad(m)
    }
}

impl From<&str> for Refused {
    fn from(m: &str) -> Refused {
        Refused::Bad(m.to_string())
    }
}

/// One job, queued or painting.
pub(crate) struct Job {
    pub(crate) id: u64,
    pub(crate) label: String,
    /// The comparison it belongs to (the id of its first job) and its strength.
    pub(crate) group: Option<u64>,
    pub(crate) strength: Option<f64>,
    /// Who queued it (the per-client bound).
    client: String,
    content: Arc<Upload>,
    styles: Vec<Arc<Upload>>,
    init: Option<(String, PathBuf)>,
    /// The upload or gallery result it starts from: held, so that its file
    /// stays until the job is done.
    _init_upload: Option<Arc<Upload>>,
    _init_item: Option<Arc<Item>>,
    options: Options,
    cli: String,
    stop: AtomicBool,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    iteration: usize,
    of: usize,
    elapsed: f64,
    history: Vec<(usize, [f64; 4])>,
    preview: Option<(usize, Arc<Vec<u8>>)>,
}

impl Job {
    fn summary(&self) -> Value {
        serde_json::json!({
            "id": self.id, "label": self.label, "group": self.group, "strength": self.strength,
            "content": self.content.name,
            "styles": self.styles.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "cli": self.cli,
        })
    }
}

/// A finished or stopped result.
#[derive(Serialize)]
pub(crate) struct Item {
    pub(crate) id: u64,
    pub(crate) job: u64,
    pub(crate) label: String,
    pub(crate) group: Option<u64>,
    pub(crate) strength: Option<f64>,
    pub(crate) content: String,
    pub(crate) styles: Vec<String>,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) iterations: usize,
    pub(crate) stopped: bool,
    pub(crate) best_loss: f64,
    pub(crate) elapsed: f64,
    /// The equivalent command line.
    pub(crate) cli: String,
    /// The job's options (the options model's keys).
    pub(crate) options: Value,
    #[serde(skip)]
    pub(crate) png: Vec<u8>,
    #[serde(skip)]
    pub(crate) thumb: Vec<u8>,
    /// Its file in the private directory, written when a job first starts
    /// from it ("use as init"); removed with the item.
    #[serde(skip)]
    file: OnceLock<PathBuf>,
}

impl Item {
    /// Bytes it keeps in memory.
    fn bytes(&self) -> u64 {
        (self.png.len() + self.thumb.len() + self.cli.len() + self.label.len()) as u64 + 1024
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        if let Some(p) = self.file.get() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[derive(Serialize)]
struct Failed {
    job: u64,
    label: String,
    error: String,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Arc<Job>>,
    running: Option<Arc<Job>>,
    gallery: Vec<Arc<Item>>,
    failed: VecDeque<Failed>,
    shutting_down: bool,
}

/// The queue, shared by the request handlers and the painting thread. Every
/// `state` event is taken and sent while the queue is locked, so that pages
/// get them in the order the queue changed (a snapshot taken before a change
/// but sent after it would leave every tab showing a stale queue).
pub(crate) struct Jobs {
    engine: Engine,
    hub: Hub,
    queue: Mutex<Queue>,
    wake: Condvar,
    next: AtomicU64,
    gallery_dir: Option<PathBuf>,
    private_dir: PathBuf,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Jobs {
    /// Starts the painting thread.
    pub(crate) fn start(
        engine: Engine,
        hub: Hub,
        gallery_dir: Option<PathBuf>,
        private_dir: PathBuf,
    ) -> Arc<Jobs> {
        let jobs = Arc::new(Jobs {
            engine,
            hub,
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            next: AtomicU64::new(1),
            gallery_dir,
            private_dir,
            thread: Mutex::new(None),
        });
        let worker = jobs.clone();
        let handle = std::thread::Builder::new()
            .name("painter".into())
            .spawn(move || worker.work())
            .expect("spawn the painting thread");
        *jobs.thread.lock().expect("thread lock") = Some(handle);
        jobs
    }

    /// Queues a page's request (one job, or one per strength); returns the
    /// job ids. Every check happens before anything is queued.
    pub(crate) fn submit(
        &self,
        req: &JobRequest,
        uploads: &uploads::Uploads,
        client: &str,
    ) -> Result<Vec<u64>, Refused> {
        let upload = |id: u64, what: &str| {
            uploads
                .get(id)
                .ok_or_else(|| format!("{what}: no upload {id} (upload the image again)"))
        };
        let content = upload(req.content, "content")?;
        if req.styles.is_empty() {
            return Err("choose at least one style image".into());
        }
        if req.styles.len() > MAX_STYLES {
            return Err(format!("styles: at most {MAX_STYLES} style images per job").into());
        }
        let styles = req
            .styles
            .iter()
            .map(|&id| upload(id, "style"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut page = req.options.clone();
        let mut init_item = None;
        let mut init_upload = None;
        let init = match &req.init {
            None => {
                if page.get("init").and_then(Value::as_str) == Some("image") {
                    return Err("init is `image`: choose a starting image (a gallery result's \"use as init\")".into());
                }
                None
            }
            Some(r) => {
                let (name, path) = match *r {
                    InitRef::Upload(id) => {
                        let u = upload(id, "init")?;
                        let r = (u.name.clone(), u.path.clone());
                        init_upload = Some(u);
                        r
                    }
                    InitRef::Gallery(id) => {
                        let item = self
                            .item(id)
                            .ok_or_else(|| format!("init: no gallery result {id}"))?;
                        let path = self.item_file(&item)?;
                        init_item = Some(item);
                        (format!("result-{id}.png"), path)
                    }
                };
                page.insert("init".into(), "image".into());
                Some((name, path))
            }
        };
        if req.strengths.len() > MAX_STRENGTHS {
            return Err(format!("compare at most {MAX_STRENGTHS} strengths").into());
        }
        if let Some(bad) = req.strengths.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("strengths must be positive numbers, not {bad}").into());
        }
        let base = self.engine.options(&page)?;
        let mut variants = Vec::new();
        if req.strengths.is_empty() {
            variants.push((None, base));
        } else {
            let content_weight = serde_json::to_value(&base)
                .ok()
                .and_then(|v| v.get("content-weight").and_then(Value::as_f64))
                .ok_or("options: no content-weight")?;
            for &s in &req.strengths {
                let style_weight = content_weight * s;
                if !style_weight.is_finite() {
                    return Err(format!(
                        "strengths: {s} times the content weight {content_weight} is not a finite style weight"
                    )
                    .into());
                }
                let mut p = page.clone();
                p.insert("style-weight".into(), style_weight.into());
                variants.push((Some(s), self.engine.options(&p)?));
            }
        }
        let mut q = self.queue.lock().expect("queue lock");
        if q.shutting_down {
            return Err("the server is stopping".into());
        }
        let limits = self.engine.limits;
        if q.waiting.len() + variants.len() > limits.max_queue {
            return Err(Refused::Busy(format!(
                "the queue is full ({} jobs waiting, at most {}: `neural-style serve --max-queue`); try again when it has room",
                q.waiting.len(),
                limits.max_queue
            )));
        }
        let mine = q
            .waiting
            .iter()
            .chain(&q.running)
            .filter(|j| j.client == client)
            .count();
        if mine + variants.len() > limits.max_queue_per_client {
            return Err(Refused::Busy(format!(
                "you have {mine} jobs queued or painting, at most {} each (`neural-style serve --max-queue-per-client`); wait for them, or stop one",
                limits.max_queue_per_client
            )));
        }
        let group = (variants.len() > 1).then(|| self.next.load(Ordering::SeqCst));
        let mut ids = Vec::new();
        for (strength, options) in variants {
            let id = self.next.fetch_add(1, Ordering::SeqCst);
            let style_names: Vec<&str> = styles.iter().map(|s| s.name.as_str()).collect();
            let label = match strength {
                Some(s) => format!(
                    "{} × {} · strength {}",
                    content.name,
                    style_names.join(" + "),
                    short(s)
                ),
                None => format!("{} × {}", content.name, style_names.join(" + ")),
            };
            let cli = cli_command(
                &content.name,
                &style_names,
                init.as_ref().map(|i| i.0.as_str()),
                &options,
            );
            q.waiting.push_back(Arc::new(Job {
                id,
                label,
                group,
                strength,
                client: client.to_string(),
                content: content.clone(),
                styles: styles.clone(),
                init: init.clone(),
                _init_upload: init_upload.clone(),
                _init_item: init_item.clone(),
                options,
                cli,
                stop: AtomicBool::new(false),
                live: Mutex::new(Live::default()),
            }));
            ids.push(id);
        }
        self.hub.send(snapshot(&q));
        drop(q);
        self.wake.notify_all();
        Ok(ids)
    }

    /// The file of a gallery result in the private directory (written on
    /// first use). The error is a message for the page.
    fn item_file(&self, item: &Arc<Item>) -> Result<PathBuf, String> {
        if let Some(p) = item.file.get() {
            return Ok(p.clone());
        }
        let path = self.private_dir.join(format!("result-{}.png", item.id));
        neural_style_core::image_io::write_file_atomic(&path, &item.png, 0o600).map_err(|e| {
            format!(
                "init: cannot store result {} to start from: {}",
                item.id,
                self.clean_path(&e.to_string())
            )
        })?;
        Ok(item.file.get_or_init(|| path).clone())
    }

    /// Stop: a queued job leaves the queue; a painting one stops after its
    /// iteration and its best image goes to the gallery. False if unknown.
    pub(crate) fn stop(&self, id: u64) -> bool {
        let mut q = self.queue.lock().expect("queue lock");
        if let Some(job) = q.running.as_ref().filter(|j| j.id == id) {
            job.stop.store(true, Ordering::SeqCst);
            return true;
        }
        let before = q.waiting.len();
        q.waiting.retain(|j| j.id != id);
        if q.waiting.len() == before {
            return false;
        }
        self.hub.send(snapshot(&q));
        true
    }

    /// The `state` event: queue, running job, gallery, recent failures.
    pub(crate) fn snapshot(&self) -> Event {
        snapshot(&self.queue.lock().expect("queue lock"))
    }

    /// The latest preview of a job (its iteration and PNG).
    pub(crate) fn preview(&self, id: u64) -> Option<(usize, Arc<Vec<u8>>)> {
        let q = self.queue.lock().expect("queue lock");
        let job = q.running.as_ref().filter(|j| j.id == id)?;
        let live = job.live.lock().expect("job lock");
        live.preview.clone()
    }

    pub(crate) fn item(&self, id: u64) -> Option<Arc<Item>> {
        let q = self.queue.lock().expect("queue lock");
        q.gallery.iter().find(|i| i.id == id).cloned()
    }

    /// Stops the server's painting: the queue is emptied, the job in flight
    /// stops and is saved (gallery, `--gallery DIR`), the thread ends.
    pub(crate) fn shutdown(&self) {
        {
            let mut q = self.queue.lock().expect("queue lock");
            q.shutting_down = true;
            q.waiting.clear();
            if let Some(j) = &q.running {
                j.stop.store(true, Ordering::SeqCst);
            }
        }
        self.wake.notify_all();
        if let Some(t) = self.thread.lock().expect("thread lock").take() {
            let _ = t.join();
        }
    }

    fn work(&self) {
        loop {
            let job = {
                let mut q = self.queue.lock().expect("queue lock");
                loop {
                    if q.shutting_down {
                        return;
                    }
                    if let Some(j) = q.waiting.pop_front() {
                        q.running = Some(j.clone());
                        self.hub.send(snapshot(&q));
                        break j;
                    }
                    q = self.wake.wait(q).expect("queue lock");
                }
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.engine.paint(&job, &self.hub)
            }));
            let result = match result {
                Ok(r) => r.map_err(|e| self.clean_error(&job, &e.to_string())),
                Err(_) => Err("the painting failed unexpectedly (see the server's log)".into()),
            };
            let result = result.map(|p| self.keep(&job, p));
            let mut q = self.queue.lock().expect("queue lock");
            q.running = None;
            match result {
                Ok(item) => {
                    let item = Arc::new(item);
                    self.hub.send(Event::new("result", &*item));
                    q.gallery.push(item);
                    evict(&mut q.gallery, &self.engine.limits);
                }
                Err(error) => {
                    let f = Failed {
                        job: job.id,
                        label: job.label.clone(),
                        error,
                    };
                    self.hub.send(Event::new("failed", &f));
                    q.failed.push_back(f);
                    if q.failed.len() > 20 {
                        q.failed.pop_front();
                    }
                }
            }
            self.hub.send(snapshot(&q));
        }
    }

    /// An error for the page: the private file names replaced by the names
    /// the user gave.
    fn clean_error(&self, job: &Job, msg: &str) -> String {
        let mut msg = msg.to_string();
        for u in std::iter::once(&job.content).chain(&job.styles) {
            msg = msg.replace(&*u.path.to_string_lossy(), &u.name);
        }
        if let Some((name, path)) = &job.init {
            msg = msg.replace(&*path.to_string_lossy(), name);
        }
        self.clean_path(&msg)
    }

    /// A message with the private directory's path replaced by "(upload)".
    fn clean_path(&self, msg: &str) -> String {
        msg.replace(&*self.private_dir.to_string_lossy(), "(upload)")
    }

    /// A painting made into a gallery item, in memory: its PNG encoded as
    /// the command line's writer encodes it (the same bytes), and saved into
    /// `--gallery DIR` if given (a failure there is logged; the result stays
    /// in the gallery).
    fn keep(&self, job: &Job, p: Painting) -> Item {
        let png = uploads::encode(&p.image, image::ImageFormat::Png);
        let picture = neural_style_core::image_io::Picture {
            width: p.image.width(),
            height: p.image.height(),
            rgb: p.image.as_raw().iter().map(|&v| f32::from(v)).collect(),
        };
        let thumb = uploads::thumbnail(&picture);
        let item = Item {
            id: job.id,
            job: job.id,
            label: job.label.clone(),
            group: job.group,
            strength: job.strength,
            content: job.content.name.clone(),
            styles: job.styles.iter().map(|s| s.name.clone()).collect(),
            width: p.image.width(),
            height: p.image.height(),
            iterations: p.iterations,
            stopped: p.stopped,
            best_loss: p.best_loss,
            elapsed: p.elapsed.as_secs_f64(),
            cli: job.cli.clone(),
            options: serde_json::to_value(&job.options).unwrap_or(Value::Null),
            png,
            thumb,
            file: OnceLock::new(),
        };
        if let Some(dir) = &self.gallery_dir {
            if let Err(e) = save_to_gallery(dir, &item) {
                super::eprint_line(&format!("error: saving to the gallery directory: {e}"));
            }
        }
        item
    }
}

/// Drops the oldest results until the gallery is within its bounds; a result
/// a queued job starts from is kept until that job is done.
fn evict(gallery: &mut Vec<Arc<Item>>, limits: &Limits) {
    loop {
        let bytes: u64 = gallery.iter().map(|i| i.bytes()).sum();
        if gallery.len() <= limits.max_results && bytes <= limits.max_results_bytes {
            return;
        }
        // Never the newest: a result always shows.
        let Some(old) = gallery[..gallery.len().saturating_sub(1)]
            .iter()
            .position(|i| Arc::strong_count(i) == 1)
        else {
            return;
        };
        gallery.remove(old);
    }
}

/// `DIR/studio-<time>-<id>.png` and its settings beside it (`.json`).
fn save_to_gallery(dir: &Path, item: &Item) -> Result<()> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stem = format!("studio-{secs}-{}", item.id);
    let png = dir.join(format!("{stem}.png"));
    neural_style_core::image_io::write_file_atomic(&png, &item.png, 0o666)?;
    let json = serde_json::to_string_pretty(item).expect("item serialises");
    neural_style_core::image_io::write_file_atomic(
        &dir.join(format!("{stem}.json")),
        json.as_bytes(),
        0o666,
    )
}

fn snapshot(q: &Queue) -> Event {
    let running = q.running.as_ref().map(|j| {
        let live = j.live.lock().expect("job lock");
        let mut v = j.summary();
        v["iteration"] = live.iteration.into();
        v["of"] = live.of.into();
        v["elapsed"] = live.elapsed.into();
        v["history"] = serde_json::to_value(&live.history).unwrap_or_default();
        v["preview"] = live.preview.as_ref().map(|p| p.0).into();
        v["stopping"] = j.stop.load(Ordering::SeqCst).into();
        v
    });
    let waiting: Vec<Value> = q
        .waiting
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let mut v = j.summary();
            v["position"] = (i + 1).into();
            v
        })
        .collect();
    Event::new(
        "state",
        &serde_json::json!({
            "running": running,
            "queue": waiting,
            "gallery": q.gallery.iter().map(|i| &**i).collect::<Vec<&Item>>(),
            "failed": q.failed,
        }),
    )
}

/// A number as the page shows it: `20`, `0.5`, `1e-4`.
fn short(x: f64) -> String {
    let s = format!("{x}");
    if s.len() > 8 {
        format!("{x:e}")
    } else {
        s
    }
}

/// The command line that paints the same image from files of these names.
pub(crate) fn cli_command(
    content: &str,
    styles: &[&str],
    init: Option<&str>,
    o: &Options,
) -> String {
    let stem = |n: &str| {
        Path::new(n)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let out = format!(
        "{}_{}.png",
        stem(content),
        styles.first().map(|s| stem(s)).unwrap_or_default()
    );
    let mut words = vec![
        "neural-style".to_string(),
        "-c".into(),
        quote(content),
        "-s".into(),
    ];
    words.extend(styles.iter().map(|s| quote(s)));
    if let Some(i) = init {
        words.push("--init-image".into());
        words.push(quote(i));
    }
    words.push("-o".into());
    words.push(quote(&out));
    words.extend(o.to_cli_args().iter().map(|a| quote(a)));
    words.join(" ")
}

/// A word for a POSIX shell: as is when safe, else in single quotes.
pub(crate) fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.,/=:+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u64, png_bytes: usize) -> Arc<Item> {
        Arc::new(Item {
            id,
            job: id,
            label: String::new(),
            group: None,
            strength: None,
            content: String::new(),
            styles: Vec::new(),
            width: 1,
            height: 1,
            iterations: 1,
            stopped: false,
            best_loss: 0.0,
            elapsed: 0.0,
            cli: String::new(),
            options: Value::Null,
            png: vec![0; png_bytes],
            thumb: Vec::new(),
            file: OnceLock::new(),
        })
    }

    fn ids(g: &[Arc<Item>]) -> Vec<u64> {
        g.iter().map(|i| i.id).collect()
    }

    #[test]
    fn the_gallery_keeps_the_newest_within_its_count_and_bytes() {
        let limits = Limits {
            max_queue: 1,
            max_queue_per_client: 1,
            max_results: 3,
            max_results_bytes: 1 << 20,
        };
        let mut g: Vec<Arc<Item>> = (1..=5).map(|i| item(i, 100)).collect();
        evict(&mut g, &limits);
        assert_eq!(ids(&g), [3, 4, 5]);
        // Bytes: each result is about 300 KiB, so three do not fit in 1 MiB
        // with a fourth; one a queued job holds stays.
        let held = item(6, 300 << 10);
        let mut g = vec![
            held.clone(),
            item(7, 300 << 10),
            item(8, 300 << 10),
            item(9, 300 << 10),
        ];
        evict(&mut g, &limits);
        assert_eq!(ids(&g), [6, 8, 9]);
        drop(held);
        g.push(item(10, 300 << 10));
        evict(&mut g, &limits);
        assert_eq!(ids(&g), [8, 9, 10]);
        // The newest always shows, whatever its size.
        let mut g = vec![item(11, 2 << 20)];
        evict(&mut g, &limits);
        assert_eq!(ids(&g), [11]);
    }

    #[test]
    fn quoting_survives_a_shell() {
        assert_eq!(quote("a.png"), "a.png");
        assert_eq!(quote("my photo.jpg"), "'my photo.jpg'");
        assert_eq!(quote("it's.png"), r"'it'\''s.png'");
        assert_eq!(quote("$(rm -rf ~).png"), "'$(rm -rf ~).png'");
        assert_eq!(quote(""), "''");
    }
}
