//! Uploaded images: stored under names the server chooses (`upload-N.EXT`) in
//! a private temporary directory (mode 0700, removed on exit), decoded with the
//! command line's decoder and its limits (sides, pixels, allocation) before
//! they are accepted. The client's file name is only a label: it is cleaned for
//! display and never used as a path.

use image::ImageFormat;
use neural_style_core::image_io::Picture;
use serde::Serialize;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Longest side of the thumbnails the page shows.
pub(crate) const THUMB: u32 = 160;

/// One accepted image.
#[derive(Debug, Serialize)]
pub(crate) struct Upload {
    pub(crate) id: u64,
    /// The client's file name, cleaned (display only).
    pub(crate) name: String,
    pub(crate) width: u32,
    pub(crate) height: u32,
    #[serde(skip)]
    pub(crate) path: PathBuf,
    #[serde(skip)]
    pub(crate) thumb: Vec<u8>,
}

/// Why an upload was refused (the HTTP status follows from it).
#[derive(Debug)]
pub(crate) enum Refused {
    TooLarge(String),
    NotAnImage(String),
    Io(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLarge(m) | Refused::NotAnImage(m) | Refused::Io(m) => f.write_str(m),
        }
    }
}

pub(crate) struct Uploads {
    dir: tempfile::TempDir,
    max_bytes: u64,
    next: AtomicU64,
    map: Mutex<HashMap<u64, Arc<Upload>>>,
}

impl Uploads {
    pub(crate) fn new(max_bytes: u64) -> neural_style_core::Result<Uploads> {
        let dir = tempfile::Builder::new()
            .prefix("neural-style-studio.")
            .tempdir()
            .map_err(|e| neural_style_core::Error::io(std::env::temp_dir(), e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
                .map_err(|e| neural_style_core::Error::io(dir.path(), e))?;
        }
        Ok(Uploads {
            dir,
            max_bytes,
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
        })
    }

    /// The private directory (uploads, and the results kept for "use as init").
    pub(crate) fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    pub(crate) fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Removes the directory and everything in it (at shutdown).
    pub(crate) fn remove_all(&self) {
        let _ = std::fs::remove_dir_all(self.dir.path());
    }

    pub(crate) fn get(&self, id: u64) -> Option<Arc<Upload>> {
        self.map.lock().expect("uploads lock").get(&id).cloned()
    }

    /// Stores and checks one upload. Blocking (decodes the image): call it
    /// off the async runtime.
    pub(crate) fn add(&self, client_name: &str, bytes: &[u8]) -> Result<Arc<Upload>, Refused> {
        let name = display_name(client_name);
        if bytes.len() as u64 > self.max_bytes {
            return Err(Refused::TooLarge(format!(
                "{name}: {} bytes, more than the limit of {} MiB",
                bytes.len(),
                self.max_bytes >> 20
            )));
        }
        let ext = match image::guess_format(bytes) {
            Ok(ImageFormat::Png) => "png",
            Ok(ImageFormat::Jpeg) => "jpg",
            Ok(ImageFormat::WebP) => "webp",
            Ok(ImageFormat::Tiff) => "tif",
            Ok(ImageFormat::Gif) => "gif",
            Ok(ImageFormat::Bmp) => "bmp",
            _ => {
                return Err(Refused::NotAnImage(format!(
                    "{name}: not an image this studio reads (PNG, JPEG, WebP, TIFF, GIF, BMP)"
                )))
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("upload-{id}.{ext}"));
        std::fs::write(&path, bytes).map_err(|e| Refused::Io(format!("{name}: {e}")))?;
        // The command line's decoder, with its limits: the image must decode whole.
        let picture = match Picture::load(&path) {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                let msg = e.to_string().replace(&*path.to_string_lossy(), &name);
                return Err(if msg.contains("too large") {
                    Refused::TooLarge(msg)
                } else {
                    Refused::NotAnImage(msg)
                });
            }
        };
        let thumb = thumbnail(&picture);
        let upload = Arc::new(Upload {
            id,
            name,
            width: picture.width,
            height: picture.height,
            path,
            thumb,
        });
        self.map
            .lock()
            .expect("uploads lock")
            .insert(id, upload.clone());
        Ok(upload)
    }
}

/// A client's file name made into a label: its last path component, control
/// characters dropped, at most 80 characters; "image" when nothing is left.
pub(crate) fn display_name(client: &str) -> String {
    let last = client.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = last.chars().filter(|c| !c.is_control()).take(80).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "image".to_string()
    } else {
        clean.to_string()
    }
}

/// A picture's thumbnail (never enlarged), as PNG.
pub(crate) fn thumbnail(p: &Picture) -> Vec<u8> {
    png_bytes(&p.resize_longest(THUMB.min(p.width.max(p.height))))
}

/// A picture encoded as PNG in memory.
pub(crate) fn png_bytes(p: &Picture) -> Vec<u8> {
    let img = image::RgbImage::from_raw(p.width, p.height, p.to_rgb8()).expect("RGB size");
    encode(&img, ImageFormat::Png)
}

/// An RGB image encoded in memory (PNG, or JPEG at the command line's quality).
pub(crate) fn encode(img: &image::RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    if format == ImageFormat::Jpeg {
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out,
            neural_style_core::image_io::JPEG_QUALITY,
        );
        img.write_with_encoder(enc).expect("in-memory JPEG");
    } else {
        img.write_to(&mut out, format).expect("in-memory image");
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_labels_not_paths() {
        assert_eq!(display_name("../../etc/passwd"), "passwd");
        assert_eq!(display_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(display_name("a/b/.."), "image");
        assert_eq!(display_name(""), "image");
        assert_eq!(display_name("x\u{0}\ny.png"), "xy.png");
        assert_eq!(display_name("photo.jpg"), "photo.jpg");
    }

    #[test]
    fn uploads_get_server_names_and_must_decode() {
        let u = Uploads::new(1 << 20).unwrap();
        let img = image::RgbImage::from_pixel(20, 10, image::Rgb([200, 10, 10]));
        let png = encode(&img, ImageFormat::Png);
        let a = u.add("../../evil.png", &png).unwrap();
        assert_eq!(a.name, "evil.png");
        assert_eq!((a.width, a.height), (20, 10));
        assert_eq!(a.path.parent().unwrap(), u.dir());
        assert!(a
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("upload-"));
        assert!(matches!(
            u.add("x.png", b"not an image"),
            Err(Refused::NotAnImage(_))
        ));
        // A PNG cut short is refused like the command line refuses it.
        assert!(matches!(
            u.add("cut.png", &png[..png.len() - 20]),
            Err(Refused::NotAnImage(_))
        ));
        let small = Uploads::new(100).unwrap();
        assert!(matches!(
            small.add("big.png", &png),
            Err(Refused::TooLarge(_))
        ));
        // Nothing refused is left behind.
        assert_eq!(std::fs::read_dir(u.dir()).unwrap().count(), 1);
    }
}
