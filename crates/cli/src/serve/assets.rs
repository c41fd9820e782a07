//! The page and the sample images, embedded in the binary: the studio needs
//! no file beside it, no CDN and no network.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// One bundled sample image (public domain; see README.md, "The studio").
pub(crate) struct Sample {
    pub(crate) name: &'static str,
    /// "content" or "style": where the page offers it.
    pub(crate) kind: &'static str,
    pub(crate) title: &'static str,
    pub(crate) bytes: &'static [u8],
}

pub(crate) const SAMPLES: &[Sample] = &[
    Sample {
        name: "tubingen.jpg",
        kind: "content",
        title: "Tübingen, Neckarfront (photo: Andreas Praefcke)",
        bytes: include_bytes!("assets/samples/tubingen.jpg"),
    },
    Sample {
        name: "starry_night.jpg",
        kind: "style",
        title: "The Starry Night (Vincent van Gogh, 1889)",
        bytes: include_bytes!("assets/samples/starry_night.jpg"),
    },
    Sample {
        name: "the_scream.jpg",
        kind: "style",
        title: "The Scream (Edvard Munch, 1893)",
        bytes: include_bytes!("assets/samples/the_scream.jpg"),
    },
];

pub(crate) fn sample(name: &str) -> Option<&'static [u8]> {
    SAMPLES.iter().find(|s| s.name == name).map(|s| s.bytes)
}

/// A file of the page, with its content type.
pub(crate) fn page(name: &str) -> Response {
    let (body, kind): (&'static str, &'static str) = match name {
        "index.html" => (
            include_str!("assets/index.html"),
            "text/html; charset=utf-8",
        ),
        "studio.js" => (
            include_str!("assets/studio.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => (include_str!("assets/studio.css"), "text/css; charset=utf-8"),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
