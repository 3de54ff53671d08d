//! The model of a `#[taskthread]` impl block, keeping the original syn nodes for spans.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, PathArguments,
    ReturnType, Type,
};

use crate::attr::{TaskArgs, parse_task_args};

/// Collects every error so the user sees them all at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn spanned(
        &mut self,
        tokens: impl quote::ToTokens,
        message: impl std::fmt::Display,
    ) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Down,
    Up,
    Stream,
    Rescheduling,
}

impl Kind {
    pub(crate) fn attr(self) -> &'static str {
        match self {
            Kind::Down => "#[down]",
            Kind::Up => "#[up]",
            Kind::Stream => "#[stream]",
            Kind::Rescheduling => "#[rescheduling]",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Kind::Rescheduling => "tasks",
            _ => "handlers",
        }
    }

    fn shape(self) -> &'static str {
        match self {
            Kind::Down => "(&mut self, ctx: &mut Ctx<Self>, msg: Message)",
            Kind::Up => "(&mut self, ctx: &mut Ctx<Self>, from: ChildId, msg: Message)",
            Kind::Stream => "(&mut self, ctx: &mut Ctx<Self>, item: Item)",
            Kind::Rescheduling => "(&mut self, ctx: &mut Ctx<Self>)",
        }
    }

    fn arity(self) -> usize {
        match self {
            Kind::Down | Kind::Stream => 3,
            Kind::Up => 4,
            Kind::Rescheduling => 2,
        }
    }
}

/// What a handler returns.
pub(crate) enum Output {
    /// Nothing, or `Result<()>` / `Result<(), E>`.
    Unit,
    /// `Result<T>` / `Result<T, E>` with `T` not `()`: the handler can be asked.
    Value(Type),
    /// Anything else; checked by the compiler against what the kind allows.
    Other(Type),
}

pub(crate) struct Handler {
    pub(crate) kind: Kind,
    pub(crate) ident: Ident,
    /// The message, up or item type (none for tasks).
    pub(crate) msg: Option<Type>,
    pub(crate) output: Output,
    pub(crate) task: TaskArgs,
    pub(crate) span: Span,
}

pub(crate) struct Hook {
    pub(crate) ident: Ident,
}

pub(crate) struct Model {
    pub(crate) handlers: Vec<Handler>,
    pub(crate) enter: Option<Hook>,
    pub(crate) exit: Option<Hook>,
}

const KINDS: [(&str, Kind); 4] = [
    ("down", Kind::Down),
    ("up", Kind::Up),
    ("stream", Kind::Stream),
    ("rescheduling", Kind::Rescheduling),
];

/// Reads the impl block, removing the handler attributes as it goes so the item can be
/// emitted as is.
pub(crate) fn parse(item: &mut ItemImpl, errors: &mut Errors) -> Model {
    let mut model = Model {
        handlers: Vec::new(),
        enter: None,
        exit: None,
    };
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = take_kind_attrs(method);
        match attrs.as_slice() {
            [] => parse_hook(method, &mut model, errors),
            [(kind, attr)] => {
                if let Some(handler) = parse_handler(*kind, attr, method, errors) {
                    model.handlers.push(handler);
                }
            }
            [_, (_, second), ..] => errors.spanned(
                second,
                "a method can have only one of `#[down]`, `#[up]`, `#[stream]` and `#[rescheduling]`",
            ),
        }
    }
    model
}

fn take_kind_attrs(method: &mut ImplItemFn) -> Vec<(Kind, Attribute)> {
    let mut found = Vec::new();
    method.attrs.retain(|attr| {
        for (name, kind) in KINDS {
            if attr.path().is_ident(name) {
                found.push((kind, attr.clone()));
                return false;
            }
        }
        true
    });
    found
}

fn parse_hook(method: &ImplItemFn, model: &mut Model, errors: &mut Errors) {
    let name = method.sig.ident.to_string();
    if name != "enter" && name != "exit" {
        return;
    }
    let what = format!("the `{name}` hook");
    let shape = "(&mut self, ctx: &mut Ctx<Self>)";
    if check_signature(method, &what, shape, 2, errors) {
        let hook = Some(Hook {
            ident: method.sig.ident.clone(),
        });
        if name == "enter" {
            model.enter = hook;
        } else {
            model.exit = hook;
        }
    }
}

/// Checks `async`, no generics, `&mut self`, a `&mut` ctx and the number of arguments.
fn check_signature(
    method: &ImplItemFn,
    what: &str,
    shape: &str,
    arity: usize,
    errors: &mut Errors,
) -> bool {
    let sig = &method.sig;
    let mut ok = true;
    if sig.asyncness.is_none() {
        errors.spanned(sig.fn_token, format!("{what} must be `async fn`"));
        ok = false;
    }
    if !sig.generics.params.is_empty() {
        errors.spanned(
            &sig.generics,
            format!("{what} cannot have generic parameters; make the thread type generic instead"),
        );
        ok = false;
    }
    match sig.inputs.first() {
        Some(FnArg::Receiver(r))
            if matches!(r.kind, syn::ReceiverKind::Reference(_, _, Some(_))) => {}
        Some(first) => {
            errors.spanned(
                first,
                format!("{what} takes `&mut self` as its first argument"),
            );
            ok = false;
        }
        None => {
            errors.spanned(
                &sig.ident,
                format!("{what} takes `&mut self` as its first argument"),
            );
            ok = false;
        }
    }
    if let Some(FnArg::Typed(second)) = sig.inputs.iter().nth(1)
        && !matches!(&*second.ty, Type::Reference(r) if r.mutability.is_some())
    {
        errors.spanned(
            &second.ty,
            format!("the second argument of {what} is `ctx: &mut Ctx<Self>`"),
        );
        ok = false;
    }
    if sig.inputs.len() != arity {
        let span_tokens = if sig.inputs.is_empty() {
            quote::quote!(#sig)
        } else {
            let inputs = &sig.inputs;
            quote::quote!(#inputs)
        };
        errors.spanned(
            span_tokens,
            format!("{what} takes {} arguments: `{shape}`", arity),
        );
        ok = false;
    }
    if sig.variadic.is_some() {
        errors.spanned(&sig.variadic, format!("{what} cannot be variadic"));
        ok = false;
    }
    ok
}

fn parse_handler(
    kind: Kind,
    attr: &Attribute,
    method: &ImplItemFn,
    errors: &mut Errors,
) -> Option<Handler> {
    let task = if kind == Kind::Rescheduling {
        match parse_task_args(attr) {
            Ok(task) => task,
            Err(e) => {
                errors.push(e);
                TaskArgs::default()
            }
        }
    } else {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.spanned(attr, format!("`{}` takes no arguments", kind.attr()));
        }
        TaskArgs::default()
    };
    let what = format!("`{}` {}", kind.attr(), kind.what());
    if !check_signature(method, &what, kind.shape(), kind.arity(), errors) {
        return None;
    }
    let msg = match method.sig.inputs.iter().last() {
        Some(FnArg::Typed(arg)) if kind != Kind::Rescheduling => Some((*arg.ty).clone()),
        _ => None,
    };
    if let Some(msg) = &msg {
        if let Type::Reference(r) = msg {
            errors.spanned(
                r,
                format!("{what} take their message by value, not by reference: messages move between threads"),
            );
            return None;
        }
        if matches!(msg, Type::ImplTrait(_) | Type::Infer(_)) {
            errors.spanned(msg, format!("{what} need a concrete message type"));
            return None;
        }
    }
    let output = parse_output(&method.sig.output);
    match (kind, &output) {
        (Kind::Up | Kind::Stream, Output::Value(ty)) => {
            errors.spanned(
                ty,
                format!(
                    "{what} return nothing or `Result<()>`; only `#[down]` handlers can answer"
                ),
            );
            return None;
        }
        (Kind::Rescheduling, Output::Unit) => {
            errors.spanned(
                &method.sig,
                "`#[rescheduling]` tasks return `Result<Reschedule>` (or `Reschedule`) to say when they run next",
            );
            return None;
        }
        (Kind::Down | Kind::Up | Kind::Stream, Output::Other(ty)) => {
            errors.spanned(
                ty,
                format!("{what} return nothing, `Result<()>` or (`#[down]` only) `Result<Answer>`"),
            );
            return None;
        }
        _ => {}
    }
    Some(Handler {
        kind,
        ident: method.sig.ident.clone(),
        msg,
        output,
        task,
        span: method.sig.span(),
    })
}

fn parse_output(output: &ReturnType) -> Output {
    let ReturnType::Type(_, ty) = output else {
        return Output::Unit;
    };
    if let Type::Tuple(t) = &**ty
        && t.elems.is_empty()
    {
        return Output::Unit;
    }
    if let Type::Path(p) = &**ty
        && let Some(last) = p.path.segments.last()
        && last.ident == "Result"
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        if let Type::Tuple(t) = ok
            && t.elems.is_empty()
        {
            return Output::Unit;
        }
        if let Type::Path(okp) = ok
            && okp
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Reschedule")
        {
            return Output::Other((**ty).clone());
        }
        return Output::Value(ok.clone());
    }
    Output::Other((**ty).clone())
}

/// Whether a type is `ChildExit` (by its last path segment): exit reports, not UP messages.
pub(crate) fn is_child_exit(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "ChildExit"))
}

/// The type as the user wrote it, for names in snapshots and error messages.
pub(crate) fn type_string(ty: &Type) -> String {
    quote::quote!(#ty)
        .to_string()
        .replace(" :: ", "::")
        .replace(":: ", "::")
        .replace(" < ", "<")
        .replace("< ", "<")
        .replace(" <", "<")
        .replace(" >", ">")
        .replace(" ,", ",")
        .replace("& ", "&")
        .replace("( ", "(")
        .replace(" )", ")")
}
