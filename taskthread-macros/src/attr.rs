//! Parsing of attribute arguments: `#[taskthread(...)]` and `#[rescheduling(...)]`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::{LitInt, LitStr, Path, Type};

/// The arguments of `#[taskthread(...)]`.
#[derive(Default)]
pub(crate) struct ThreadArgs {
    pub(crate) up: Option<Type>,
    pub(crate) capacity: Option<LitInt>,
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
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

fn duplicate(meta: &syn::meta::ParseNestedMeta<'_>, name: &str) -> syn::Error {
    meta.error(format!("`{name}` specified more than once"))
}

pub(crate) fn parse_thread_args(args: TokenStream) -> syn::Result<ThreadArgs> {
    let mut out = ThreadArgs::default();
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("up") {
            if out.up.is_some() {
                return Err(duplicate(&meta, "up"));
            }
            out.up = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("capacity") {
            if out.capacity.is_some() {
                return Err(duplicate(&meta, "capacity"));
            }
            let lit: LitInt = meta.value()?.parse()?;
            match lit.base10_parse::<usize>() {
                Ok(0) => return Err(syn::Error::new(lit.span(), "`capacity` must be at least 1")),
                Ok(_) => {}
                Err(_) => {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`capacity` must be a positive integer, e.g. `capacity = 128`",
                    ));
                }
            }
            out.capacity = Some(lit);
        } else if meta.path.is_ident("name") {
            if out.name.is_some() {
                return Err(duplicate(&meta, "name"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            let value = lit.value();
            if value.is_empty() || value.contains('/') {
                return Err(syn::Error::new(
                    lit.span(),
                    "`name` must be non-empty and must not contain `/` (the path separator)",
                ));
            }
            out.name = Some(lit);
        } else if meta.path.is_ident("crate") {
            if out.krate.is_some() {
                return Err(duplicate(&meta, "crate"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            out.krate = Some(lit.parse()?);
        } else {
            let name = path_name(&meta.path);
            return Err(meta.error(format!(
                "unknown `#[taskthread]` option `{name}`; expected `up = Type`, `capacity = N`, `name = \"...\"` or `crate = \"path\"`"
            )));
        }
        Ok(())
    });
    parser.parse2(args)?;
    Ok(out)
}

pub(crate) fn parse_task_args(attr: &syn::Attribute) -> syn::Result<TaskArgs> {
    let mut out = TaskArgs::default();
    if matches!(attr.meta, syn::Meta::Path(_)) {
        return Ok(out);
    }
    attr.parse_nested_meta(|meta| {
        if meta.path.is_ident("every") {
            if out.every.is_some() {
                return Err(duplicate(&meta, "every"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            let every = parse_duration(&lit)?;
            if every.is_zero() {
                return Err(syn::Error::new(lit.span(), "`every` must be longer than zero"));
            }
            out.every = Some(every);
        } else if meta.path.is_ident("delay") {
            if out.delay.is_some() {
                return Err(duplicate(&meta, "delay"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            out.delay = Some(parse_duration(&lit)?);
        } else if meta.path.is_ident("manual") {
            if out.manual {
                return Err(duplicate(&meta, "manual"));
            }
            if meta.input.peek(syn::Token![=]) {
                return Err(meta.error("`manual` is a flag and takes no value: write `manual`"));
            }
            out.manual = true;
        } else if meta.path.is_ident("missed") {
            if out.missed.is_some() {
                return Err(duplicate(&meta, "missed"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            let missed = match lit.value().as_str() {
                "skip" => Missed::Skip,
                "burst" => Missed::Burst,
                "delay" => Missed::Delay,
                other => {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("unknown missed-tick policy \"{other}\"; expected \"skip\", \"burst\" or \"delay\""),
                    ));
                }
            };
            out.missed = Some((missed, lit.span()));
        } else {
            let name = path_name(&meta.path);
            return Err(meta.error(format!(
                "unknown `#[rescheduling]` option `{name}`; expected `every = \"5s\"`, `delay = \"1s\"`, `manual` or `missed = \"skip\" | \"burst\" | \"delay\"`"
            )));
        }
        Ok(())
    })?;
    if let (Some((_, span)), None) = (out.missed, out.every) {
        return Err(syn::Error::new(
            span,
            "`missed` only applies to periodic tasks; add `every = \"...\"`",
        ));
    }
    Ok(out)
}

fn path_name(path: &Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
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
    use super::parse_duration_str;
    use std::time::Duration;

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
