//! [`LazyPath`]: a thread's path in the tree (`master/tcp_server/conn-17`), built only
//! when something asks for it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

/// A thread's path, from its parent's path, its name and its suffix, built (one
/// allocation) the first time something asks for it. Cloning it copies the parts and the
/// path if it is built: no allocation.
#[derive(Clone)]
pub(crate) struct LazyPath {
    parent: Option<Arc<str>>,
    name: Name,
    /// `name-suffix` unless 0.
    suffix: u32,
    built: OnceLock<Arc<str>>,
}

/// What holds a thread's path: its node, which a report on the thread keeps instead of a
/// copy of the path (no count to raise, nothing to copy as the report is made).
pub(crate) trait Located: Send + Sync {
    fn location(&self) -> &LazyPath;
}

/// A thread's name: its type's default, or one it was given.
#[derive(Clone)]
enum Name {
    Static(&'static str),
    Shared(Arc<str>),
}

impl LazyPath {
    pub(crate) fn get(&self) -> &Arc<str> {
        self.built.get_or_init(|| {
            let name = match &self.name {
                Name::Static(name) => name,
                Name::Shared(name) => &**name,
            };
            build_path(self.parent.as_deref(), name, self.suffix)
        })
    }

    /// The last segment of the path: the name and its suffix.
    pub(crate) fn name(&self) -> &str {
        let at = self.parent.as_ref().map_or(0, |p| p.len() + 1);
        &self.get()[at..]
    }
}

impl LazyPath {
    /// The parts of a path; nothing is built yet.
    pub(crate) fn new(parent: Option<Arc<str>>, name: Cow<'static, str>, suffix: u32) -> Self {
        Self {
            parent,
            name: match name {
                Cow::Borrowed(name) => Name::Static(name),
                Cow::Owned(name) => Name::Shared(Arc::from(name)),
            },
            suffix,
            built: OnceLock::new(),
        }
    }
}

/// `parent/name-suffix` (or without the parent or the suffix) in one allocation, the
/// `Arc<str>` itself, for the usual short paths.
fn build_path(parent: Option<&str>, name: &str, suffix: u32) -> Arc<str> {
    let mut digits = [0u8; 10];
    let mut first = digits.len();
    let mut n = suffix;
    while n > 0 {
        first -= 1;
        digits[first] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let digits = &digits[first..];
    let mut buf = [0u8; 128];
    let parts: [&[u8]; 5] = [
        parent.map_or(&[][..], str::as_bytes),
        if parent.is_some() { b"/" } else { b"" },
        name.as_bytes(),
        if digits.is_empty() { b"" } else { b"-" },
        digits,
    ];
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > buf.len() {
        let mut path = String::with_capacity(len);
        for part in parts {
            // Every part is UTF-8 (a `str` or ASCII).
            path.push_str(std::str::from_utf8(part).unwrap_or_default());
        }
        return Arc::from(path);
    }
    let mut at = 0;
    for part in parts {
        buf[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::build_path;

    #[test]
    fn paths_join_parent_name_and_suffix() {
        assert_eq!(&*build_path(None, "master", 0), "master");
        assert_eq!(&*build_path(Some("master"), "conn", 0), "master/conn");
        assert_eq!(&*build_path(Some("master"), "conn", 17), "master/conn-17");
        assert_eq!(
            &*build_path(Some("a"), "b", u32::MAX),
            format!("a/b-{}", u32::MAX)
        );
        assert_eq!(&*build_path(Some("größe"), "naïve", 2), "größe/naïve-2");
    }

    #[test]
    fn long_paths_are_built_whole() {
        let parent = "p".repeat(200);
        let name = "ñ".repeat(50);
        assert_eq!(
            &*build_path(Some(&parent), &name, 3),
            format!("{parent}/{name}-3")
        );
    }
}
