//! Rules across the impl block: what kind of impl it is, and one handler per message type.

use std::collections::HashMap;

use syn::ext::IdentExt;
use syn::{GenericParam, ItemImpl, Type};

use crate::ast::{Kind, Model};
use crate::attr::ThreadArgs;
use crate::diag::{Errors, type_string};

/// Checks the impl block itself. Returns whether the thread's code can still be generated
/// (so that an error elsewhere does not bring follow-on errors about a missing `Thread`
/// impl).
pub(crate) fn check_impl(item: &ItemImpl, errors: &mut Errors) -> bool {
    let mut generate = true;
    if let Some((path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "`#[taskthread]` goes on an inherent impl block (`impl MyThread { ... }`), not on a trait impl",
        );
        generate = false;
    }
    if item.unsafety.is_some() {
        errors.spanned(
            item.unsafety,
            "`#[taskthread]` impl blocks cannot be `unsafe`",
        );
        generate = false;
    }
    for param in &item.generics.params {
        match param {
            GenericParam::Type(_) => {}
            GenericParam::Lifetime(l) => errors.spanned(
                l,
                "threads live on their own task, so a thread type cannot borrow: remove the lifetime parameter",
            ),
            GenericParam::Const(c) => errors.spanned(
                c,
                "const generic parameters are not supported on thread types yet; use a type parameter or a field",
            ),
        }
    }
    if !matches!(&*item.self_ty, Type::Path(p) if p.qself.is_none()) {
        errors.spanned(
            &item.self_ty,
            "`#[taskthread]` needs a named struct or enum type, e.g. `impl Worker { ... }`",
        );
        generate = false;
    }
    generate
}

/// Checks the handlers against each other, and takes out of the dispatch the ones that
/// cannot be in it (a second handler for one type, whose impls would conflict), so the rest
/// can still be generated.
pub(crate) fn check_model(item: &ItemImpl, model: &mut Model, errors: &mut Errors) {
    let mut seen: HashMap<(u8, String, String), syn::Ident> = HashMap::new();
    for handler in &mut model.handlers {
        let Some(msg) = &handler.msg else {
            continue;
        };
        if handler.kind == Kind::Up
            && let Some(param) = bare_type_param(item, msg)
        {
            errors.spanned(
                msg,
                format!(
                    "an `#[up]` handler cannot take a bare type parameter: `{param}` could be `NoUp`, which every thread already handles for children that send nothing up; wrap it in a type, e.g. `Done<{param}>`"
                ),
            );
            handler.msg = None;
            handler.callable = false;
            continue;
        }
        // Handlers under different `#[cfg]`s may take one type: at most one is compiled.
        let key = (handler.kind as u8, type_string(msg), handler.cfg.key());
        if let Some(first) = seen.get(&key) {
            errors.spanned(
                msg,
                format!(
                    "two `{}` handlers for `{}`: `{}` and `{}`; each type has one handler, so merge them",
                    handler.kind.attr(),
                    key.1,
                    first.unraw(),
                    handler.ident.unraw()
                ),
            );
            handler.msg = None;
            handler.callable = false;
            continue;
        }
        seen.insert(key, handler.ident.clone());
    }
}

/// The type parameter of the impl that `ty` is, if it is one.
fn bare_type_param<'a>(item: &'a ItemImpl, ty: &Type) -> Option<&'a syn::Ident> {
    let Type::Path(p) = ty else { return None };
    let ident = p.path.get_ident()?;
    item.generics.params.iter().find_map(|param| match param {
        GenericParam::Type(t) if t.ident == *ident => Some(&t.ident),
        _ => None,
    })
}

/// Checks `pass_up` against the up type and the `#[up]` handlers: there must be an up type
/// to pass, a concrete one (a type parameter could be `NoUp`, which every thread already
/// handles), and no handler of its own for it, which would never run. Such a handler is
/// taken out of the dispatch, whose impl would conflict with the one that passes.
pub(crate) fn check_pass_up(
    item: &ItemImpl,
    args: &mut ThreadArgs,
    model: &mut Model,
    errors: &mut Errors,
) {
    let Some(span) = args.pass_up else {
        return;
    };
    let Some(up) = &args.up else {
        errors.push(syn::Error::new(
            span,
            "`pass_up` passes the children's messages of this thread's up type on to its parent, and this thread declares none: add `up = Type`",
        ));
        return;
    };
    let up_name = type_string(up);
    let no_up =
        matches!(up, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "NoUp"));
    let refused = if no_up {
        Some("`pass_up` has nothing to pass: the up type `NoUp` has no values".to_owned())
    } else if may_be_anything(item, up) {
        Some(format!(
            "`pass_up` needs a named up type: `{up_name}` could be `NoUp`, which every thread already handles; wrap it in a type, e.g. `up = Data<...>`"
        ))
    } else {
        None
    };
    if let Some(message) = refused {
        errors.push(syn::Error::new(span, message));
        args.pass_up = None;
        return;
    }
    for handler in &mut model.handlers {
        // Under a `#[cfg]` too: whenever it is compiled in, it would never run.
        if handler.kind != Kind::Up {
            continue;
        }
        let Some(msg) = &handler.msg else { continue };
        if type_string(msg) == up_name {
            errors.spanned(
                msg,
                format!(
                    "`pass_up` sends the children's `{up_name}` straight to the parent, so `{}` would never run: remove it, or remove `pass_up` to handle `{up_name}` here",
                    handler.ident.unraw()
                ),
            );
            handler.msg = None;
            handler.callable = false;
        }
    }
}

/// Whether a type could be any type (a type parameter of the impl, `Self`, a projection, a
/// macro): then impls for other types could overlap with an impl for it.
pub(crate) fn may_be_anything(item: &ItemImpl, ty: &Type) -> bool {
    match ty {
        Type::Paren(t) => may_be_anything(item, &t.elem),
        Type::Group(t) => may_be_anything(item, &t.elem),
        Type::Path(p) => {
            let first = &p.path.segments[0].ident;
            p.qself.is_some()
                || first == "Self"
                || item
                    .generics
                    .params
                    .iter()
                    .any(|param| matches!(param, GenericParam::Type(t) if t.ident == *first))
        }
        Type::Macro(_) | Type::Verbatim(_) => true,
        _ => false,
    }
}
