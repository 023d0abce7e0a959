//! Which images a save takes and what each is called in the bundle: the reference list (`--from-file`,
//! one a line) and the bundle name `PROJECT/REPO:TAG`, the registry host dropped, as `tree` lists
//! it and `load` reads it. Two references that would share a name are refused before anything is
//! fetched: the bundle could only keep one of them. Pure code but for reading the list.

use std::path::Path;

use super::Error;
use crate::bounded;
use crate::registry::Reference;

/// One image to save.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) reference: Reference,
    /// Its `org.opencontainers.image.ref.name` in the bundle.
    pub(super) name: String,
}

/// The references in a list file: one a line, blank lines and `#` comments skipped.
pub fn parse_ref_list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Reads the list at `path` (`-` for stdin), bounded by [`bounded::LISTING`].
pub fn read_ref_list(path: &Path) -> Result<Vec<String>, Error> {
    let err = |source| Error::ReadList {
        path: path.to_path_buf(),
        source,
    };
    let bytes = if path.as_os_str() == "-" {
        bounded::read(
            std::io::stdin().lock(),
            bounded::LISTING,
            "the reference list",
        )
    } else {
        std::fs::File::open(path)
            .and_then(|f| bounded::read(f, bounded::LISTING, "the reference list"))
    }
    .map_err(err)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "it is not UTF-8 text",
        ))
    })?;
    Ok(parse_ref_list(&text))
}

/// The bundle name of `r`: `REPO:TAG` (`latest` without one), `REPO@DIGEST` when pinned by
/// digest only.
pub(super) fn bundle_name(r: &Reference) -> String {
    match (r.tag_or_default(), &r.digest) {
        (Some(tag), _) => format!("{}:{tag}", r.repository),
        (None, Some(d)) => format!("{}@{d}", r.repository),
        (None, None) => unreachable!("a reference without tag or digest defaults to latest"),
    }
}

/// Parses `refs` and names them; the same reference twice is saved once, two references with
/// one bundle name are [`Error::NameClash`].
pub(super) fn targets(
    refs: &[String],
    default_registry: Option<&str>,
) -> Result<Vec<Target>, Error> {
    let mut out: Vec<Target> = Vec::new();
    for r in refs {
        let reference = Reference::parse(r, default_registry)?;
        let name = bundle_name(&reference);
        match out.iter().find(|t| t.name == name) {
            Some(t) if t.reference == reference => continue,
            Some(t) => {
                return Err(Error::NameClash {
                    name,
                    first: t.reference.to_string(),
                    second: reference.to_string(),
                })
            }
            None => out.push(Target { reference, name }),
        }
    }
    if out.is_empty() {
        return Err(Error::NoRefs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_skips_blank_lines_and_comments() {
        let text = "# images\nreg.example/a/b:1\n\n  reg.example/a/c@sha256:00 \n\t# x\n";
        assert_eq!(
            parse_ref_list(text),
            ["reg.example/a/b:1", "reg.example/a/c@sha256:00"]
        );
    }

    #[test]
    fn names_drop_the_host_and_clashes_are_refused() {
        let d = crate::oci::Digest::sha256_of(b"x");
        let refs = vec![
            "reg.example/p/a:1".to_string(),
            "p/a:1".to_string(),
            "p/b".to_string(),
            format!("p/c@{d}"),
            format!("p/e:2@{d}"),
        ];
        let t = targets(&refs, Some("reg.example")).unwrap();
        let names: Vec<_> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["p/a:1", "p/b:latest", &format!("p/c@{d}"), "p/e:2"]);
        let clash = vec![
            "one.example/p/a:1".to_string(),
            "two.example/p/a:1".to_string(),
        ];
        let e = targets(&clash, None).unwrap_err().to_string();
        assert!(
            e.contains("one.example/p/a:1") && e.contains("two.example/p/a:1"),
            "{e}"
        );
        assert!(matches!(targets(&[], None), Err(Error::NoRefs)));
    }
}
