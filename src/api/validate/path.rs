//! Where a value sits in a manifest (`spec.env[1].value`), built as a walk descends and
//! written out only when a message needs it: most values are fine, and formatting the path
//! of each one cost more than checking it.

use std::fmt;

/// A field path, from the root of the object.
#[derive(Clone, Copy, Debug)]
pub(super) enum Path<'a> {
    /// The object itself.
    Root,
    /// A field of a mapping.
    Key(&'a Path<'a>, &'a str),
    /// An item of a list.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// Whether this is the object itself.
    pub(super) fn is_root(&self) -> bool {
        matches!(self, Path::Root)
    }

    /// The path of a field below this one.
    pub(super) fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path::Key(self, key)
    }

    /// The path of a list item below this one.
    pub(super) fn index(&self, i: usize) -> Path<'_> {
        Path::Index(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) if parent.is_root() => f.write_str(key),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_the_api_server_writes_them() {
        let root = Path::Root;
        assert_eq!(root.to_string(), "");
        let spec = root.key("spec");
        let env = spec.key("env");
        let item = env.index(1);
        assert_eq!(item.key("value").to_string(), "spec.env[1].value");
        assert_eq!(root.index(0).to_string(), "[0]");
    }
}
