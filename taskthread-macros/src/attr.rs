//! Parsing of attribute arguments: `#[taskthread(...)]` and `#[rescheduling(...)]`.
//!
//! Both parsers keep going after a bad option so that every mistake is reported at once;
//! only a syntax error (the rest cannot be read) stops them.

use std::time::Duration;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Lit, LitInt, LitStr, Path, Token, Type};

use crate::diag::{Errors, type_string};

/// The arguments of `#[taskthread(...)]`.
#[derive(Default)]
pub(crate) struct ThreadArgs {
    pub(crate) up: Option<Type>,
    pub(crate) capacity: Option<LitInt>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
    /// `remote`: the thread's messages can cross a process boundary.
    pub(crate) remote: Option<Span>,
    /// `pass_up`: the children's messages of the thread's up type go straight to its
    /// parent, as its own.
    pub(crate) pass_up: Option<Span>,
}

/// What a periodic task does with missed ticks.
#[derive(Clone, Copy, Default)]
pub(crate) enum Missed {
    #[default]
    Skip,
    Burst,
    Delay,
}

/// The arguments of `#[rescheduling(...)]`.
#[derive(Default)]
pub(crate) struct TaskArgs {
    pub(crate) every: Option<Duration>,
    pub(crate) delay: Option<Duration>,
    pub(crate) manual: bool,
    pub(crate) missed: Option<(Missed, Span)>,
}

fn duplicate(meta: &ParseNestedMeta<'_>, name: &str) -> syn::Error {
    syn::Error::new_spanned(&meta.path, format!("`{name}` specified more than once"))
}

/// Consumes what is left of an option up to the next top-level comma, after its error has
/// been recorded, so parsing can go on with the next option.
fn skip_rest(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// Reads `= "..."`: a string literal, or an error that shows the expected form.
fn string_value(
    meta: &ParseNestedMeta<'_>,
    example: &str,
) -> syn::Result<Result<LitStr, syn::Error>> {
    let lit: Lit = meta.value()?.parse()?;
    Ok(match lit {
        Lit::Str(lit) => Ok(lit),
        other => Err(syn::Error::new(
            other.span(),
            format!("expected a string, e.g. `{example}`"),
        )),
    })
}

/// Reads a flag option (`remote`, `pass_up`): no value, given once.
fn flag(
    meta: &ParseNestedMeta<'_>,
    name: &str,
    slot: &mut Option<Span>,
    found: &mut Errors,
) -> syn::Result<()> {
    if meta.input.peek(Token![=]) || !(meta.input.is_empty() || meta.input.peek(Token![,])) {
        found.push(meta.error(format!(
            "`{name}` is a flag and takes no value: write `{name}`"
        )));
        skip_rest(meta)?;
    } else if slot.is_some() {
        found.push(duplicate(meta, name));
    } else {
        *slot = Some(meta.path.span());
    }
    Ok(())
}

pub(crate) fn parse_thread_args(args: TokenStream, errors: &mut Errors) -> ThreadArgs {
    let mut out = ThreadArgs::default();
    let mut found = Errors::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("up") {
            let value = meta.value()?;
            let ty: Type = if value.peek(LitStr) {
                // `up = "Frame"`: read the string as the type it names, so that the rest
                // of the expansion goes on as if it had been written without quotes.
                let lit: LitStr = value.parse()?;
                match lit.parse::<Type>() {
                    Ok(ty) => {
                        found.push(syn::Error::new(
                            lit.span(),
                            format!(
                                "`up` takes a type, not a string: write `up = {}`",
                                type_string(&ty)
                            ),
                        ));
                        ty
                    }
                    Err(_) => {
                        found.push(syn::Error::new(
                            lit.span(),
                            "`up` takes a type, e.g. `up = Frame`",
                        ));
                        return Ok(());
                    }
                }
            } else {
                value.parse()?
            };
            if out.up.is_some() {
                found.push(duplicate(&meta, "up"));
            } else {
                out.up = Some(ty);
            }
        } else if meta.path.is_ident("capacity") {
            let lit: Lit = meta.value()?.parse()?;
            let capacity = match &lit {
                Lit::Int(int) => match int.base10_parse::<usize>() {
                    Ok(0) => {
                        Err("`capacity` must be at least 1: a queue holds at least one message")
                    }
                    Ok(_) => Ok(int.clone()),
                    Err(_) => Err("`capacity` must be a positive integer, e.g. `capacity = 128`"),
                },
                _ => Err("`capacity` must be a positive integer, e.g. `capacity = 128`"),
            };
            match capacity {
                Err(message) => found.push(syn::Error::new(lit.span(), message)),
                Ok(_) if out.capacity.is_some() => found.push(duplicate(&meta, "capacity")),
                Ok(int) => out.capacity = Some(int),
            }
        } else if meta.path.is_ident("name") {
            match string_value(&meta, "name = \"worker\"")? {
                Err(e) => found.push(e),
                Ok(lit) => {
                    let value = lit.value();
                    if value.is_empty() || value.contains('/') {
                        found.push(syn::Error::new(
                            lit.span(),
                            "`name` must be non-empty and must not contain `/` (the path separator)",
                        ));
                    } else if out.name.is_some() {
                        found.push(duplicate(&meta, "name"));
                    } else {
                        out.name = Some(lit);
                    }
                }
            }
        } else if meta.path.is_ident("crate") {
            match string_value(&meta, "crate = \"my_crate::taskthread\"")? {
                Err(e) => found.push(e),
                Ok(lit) => match lit.parse::<Path>() {
                    Err(_) => found.push(syn::Error::new(
                        lit.span(),
                        "`crate` must be a path to the taskthread crate, e.g. `crate = \"my_crate::taskthread\"`",
                    )),
                    Ok(_) if out.krate.is_some() => found.push(duplicate(&meta, "crate")),
                    Ok(path) => out.krate = Some(path),
                },
            }
        } else if meta.path.is_ident("remote") {
            flag(&meta, "remote", &mut out.remote, &mut found)?;
        } else if meta.path.is_ident("pass_up") {
            flag(&meta, "pass_up", &mut out.pass_up, &mut found)?;
        } else {
            let name = path_name(&meta.path);
            let message = match closest(
                &name,
                &["up", "capacity", "name", "crate", "remote", "pass_up"],
            ) {
                Some(known) => {
                    format!("unknown `#[taskthread]` option `{name}`; did you mean `{known}`?")
                }
                None => format!(
                    "unknown `#[taskthread]` option `{name}`; expected `up = Type`, `capacity = N`, `name = \"...\"`, `crate = \"path\"`, `remote` or `pass_up`"
                ),
            };
            found.push(syn::Error::new_spanned(&meta.path, message));
            skip_rest(&meta)?;
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(args) {
        found.push(e);
    }
    if let Err(e) = found.finish() {
        errors.push(e);
    }
    out
}

pub(crate) fn parse_task_args(attr: &syn::Attribute, errors: &mut Errors) -> TaskArgs {
    let mut out = TaskArgs::default();
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return out;
    }
    let mut found = Errors::default();
    // Whether `every` was written at all, valid or not: `missed` without it is a mistake of
    // its own, but `missed` next to a bad `every` is not.
    let mut every_written = false;
    let parsed = attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("every") {
            every_written = true;
            match string_value(&meta, "every = \"5s\"")?.and_then(|lit| {
                let every = parse_duration(&lit)?;
                if every.is_zero() {
                    return Err(syn::Error::new(lit.span(), "`every` must be longer than zero"));
                }
                Ok(every)
            }) {
                Err(e) => found.push(e),
                Ok(_) if out.every.is_some() => found.push(duplicate(&meta, "every")),
                Ok(every) => out.every = Some(every),
            }
        } else if meta.path.is_ident("delay") {
            match string_value(&meta, "delay = \"1s\"")?.and_then(|lit| parse_duration(&lit)) {
                Err(e) => found.push(e),
                Ok(_) if out.delay.is_some() => found.push(duplicate(&meta, "delay")),
                Ok(delay) => out.delay = Some(delay),
            }
        } else if meta.path.is_ident("manual") {
            if meta.input.peek(Token![=]) || !(meta.input.is_empty() || meta.input.peek(Token![,])) {
                found.push(meta.error("`manual` is a flag and takes no value: write `manual`"));
                skip_rest(&meta)?;
            } else if out.manual {
                found.push(duplicate(&meta, "manual"));
            }
            out.manual = true;
        } else if meta.path.is_ident("missed") {
            let missed = string_value(&meta, "missed = \"skip\"")?.and_then(|lit| {
                match lit.value().as_str() {
                    "skip" => Ok((Missed::Skip, lit.span())),
                    "burst" => Ok((Missed::Burst, lit.span())),
                    "delay" => Ok((Missed::Delay, lit.span())),
                    other => Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "unknown missed-tick policy \"{other}\"; expected \"skip\", \"burst\" or \"delay\""
                        ),
                    )),
                }
            });
            match missed {
                Err(e) => found.push(e),
                Ok(_) if out.missed.is_some() => found.push(duplicate(&meta, "missed")),
                Ok(missed) => out.missed = Some(missed),
            }
        } else {
            let name = path_name(&meta.path);
            let message = match closest(&name, &["every", "delay", "manual", "missed"]) {
                Some(known) => format!("unknown `#[rescheduling]` option `{name}`; did you mean `{known}`?"),
                None => format!(
                    "unknown `#[rescheduling]` option `{name}`; expected `every = \"5s\"`, `delay = \"1s\"`, `manual` or `missed = \"skip\" | \"burst\" | \"delay\"`"
                ),
            };
            found.push(syn::Error::new_spanned(&meta.path, message));
            skip_rest(&meta)?;
        }
        Ok(())
    });
    if let Err(e) = parsed {
        found.push(e);
    }
    if let (Some((_, span)), false) = (out.missed, every_written) {
        found.push(syn::Error::new(
            span,
            "`missed` only applies to periodic tasks; add `every = \"...\"`",
        ));
    }
    if let Err(e) = found.finish() {
        errors.push(e);
    }
    out
}

fn path_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.unraw().to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// The known name a misspelt one most likely means: one edit away (two for longer names),
/// counting a swap of two neighbouring letters as one edit.
pub(crate) fn closest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|&k| (edit_distance(name, k), k))
        .filter(|&(d, k)| d > 0 && d <= if k.chars().count() > 4 { 2 } else { 1 })
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Parses `"500ms"`, `"5s"`, `"1.5s"`, `"2m"`, `"1h"`: a number and one unit.
pub(crate) fn parse_duration(lit: &LitStr) -> syn::Result<Duration> {
    let text = lit.value();
    parse_duration_str(text.trim()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            format!(
                "invalid duration \"{text}\": expected a number followed by a unit (ns, us, ms, s, m or h), e.g. \"500ms\" or \"5s\""
            ),
        )
    })
}

fn parse_duration_str(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let nanos_per_unit: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::{closest, parse_duration_str};
    use std::time::Duration;

    #[test]
    fn misspellings() {
        let kinds = ["down", "up", "stream", "rescheduling"];
        assert_eq!(closest("donw", &kinds), Some("down"));
        assert_eq!(closest("dwn", &kinds), Some("down"));
        assert_eq!(closest("upp", &kinds), Some("up"));
        assert_eq!(closest("steam", &kinds), Some("stream"));
        assert_eq!(closest("reschedulling", &kinds), Some("rescheduling"));
        assert_eq!(closest("reshceduling", &kinds), Some("rescheduling"));
        for other in [
            "doc",
            "cfg",
            "inline",
            "allow",
            "test",
            "down",
            "instrument",
            "must_use",
        ] {
            assert_eq!(closest(other, &kinds), None, "{other}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration_str("500ms"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_duration_str("5s"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_duration_str("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_duration_str("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration_str("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration_str("10us"), Some(Duration::from_micros(10)));
        for bad in ["", "5", "s", "5x", "1.s", ".5s", "5 parsecs", "-1s", "1e3s"] {
            assert_eq!(parse_duration_str(bad), None, "{bad}");
        }
    }
}
