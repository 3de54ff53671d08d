//! Rules across the impl block: what kind of impl it is, and one handler per message type.

use std::collections::HashMap;

use syn::{GenericParam, ItemImpl, Type};

use crate::ast::{Errors, Kind, Model, type_string};

pub(crate) fn check_impl(item: &ItemImpl, errors: &mut Errors) {
    if let Some((path, _)) = &item.trait_ {
        errors.spanned(
            path,
            "`#[taskthread]` goes on an inherent impl block (`impl MyThread { ... }`), not on a trait impl",
        );
    }
    if item.unsafety.is_some() {
        errors.spanned(
            item.unsafety,
            "`#[taskthread]` impl blocks cannot be `unsafe`",
        );
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
    }
}

pub(crate) fn check_model(model: &Model, errors: &mut Errors) {
    let mut seen: HashMap<(u8, String), &syn::Ident> = HashMap::new();
    for handler in &model.handlers {
        let Some(msg) = &handler.msg else { continue };
        let key = (handler.kind as u8, type_string(msg));
        if let Some(first) = seen.get(&key) {
            errors.spanned(
                msg,
                format!(
                    "two `{}` handlers for `{}`: `{}` and `{}`; each type has one handler, so merge them",
                    handler.kind.attr(),
                    key.1,
                    first,
                    handler.ident
                ),
            );
        } else {
            seen.insert(key, &handler.ident);
        }
        if handler.kind == Kind::Down && crate::ast::is_child_exit(msg) {
            errors.spanned(
                msg,
                "`ChildExit` arrives UP from children: handle it with `#[up] async fn exited(&mut self, ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit)`",
            );
        }
    }
}
