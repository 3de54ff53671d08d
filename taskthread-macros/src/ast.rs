//! The model of a `#[taskthread]` impl block, keeping the original syn nodes for spans.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, PathArguments,
    ReturnType, Signature, Type,
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
    /// `Reschedule`, `Result<Reschedule>` or `Result<Reschedule, E>`: what tasks return.
    Reschedule,
    /// Anything else.
    Other(Type),
}

pub(crate) struct Handler {
    pub(crate) kind: Kind,
    pub(crate) ident: Ident,
    /// The message, up or item type (none for tasks).
    pub(crate) msg: Option<Type>,
    pub(crate) output: Output,
    pub(crate) task: TaskArgs,
    /// Where compiler errors about the call of the method land: its signature.
    pub(crate) span: Span,
    /// Where a type mismatch of the `ctx` argument lands: the type the user wrote.
    pub(crate) ctx_span: Span,
}

pub(crate) struct Hook {
    pub(crate) ident: Ident,
    pub(crate) span: Span,
    pub(crate) ctx_span: Span,
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
        let Some((kind, attr)) = attrs.first() else {
            if parse_hook(method, &mut model, errors) {
                allow_unused_async(method);
            }
            continue;
        };
        for (_, extra) in &attrs[1..] {
            errors.spanned(
                extra,
                "a method can have only one of `#[down]`, `#[up]`, `#[stream]` and `#[rescheduling]`; split it into two methods",
            );
        }
        if let Some(handler) = parse_handler(*kind, attr, method, errors) {
            model.handlers.push(handler);
            allow_unused_async(method);
        }
    }
    model
}

/// Handlers and hooks must be `async fn` even when they do not await, so clippy's
/// `unused_async` would only ask for something the macro forbids.
fn allow_unused_async(method: &mut ImplItemFn) {
    method
        .attrs
        .push(syn::parse_quote!(#[allow(clippy::unused_async)]));
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

/// Reads `enter` or `exit`; returns whether the method is a valid hook.
fn parse_hook(method: &ImplItemFn, model: &mut Model, errors: &mut Errors) -> bool {
    let name = method.sig.ident.to_string();
    if name != "enter" && name != "exit" {
        return false;
    }
    let what = format!("the `{name}` hook");
    let shape = "(&mut self, ctx: &mut Ctx<Self>)";
    if !check_signature(&method.sig, &what, shape, 2, None, errors) {
        return false;
    }
    match parse_output(&method.sig.output) {
        Output::Unit => {}
        Output::Value(ty) | Output::Other(ty) => {
            errors.spanned(ty, format!("{what} returns nothing or `Result<()>`"));
            return false;
        }
        Output::Reschedule => {
            errors.spanned(
                &method.sig.output,
                format!("{what} returns nothing or `Result<()>`; only `#[rescheduling]` tasks return `Reschedule`"),
            );
            return false;
        }
    }
    let hook = Some(Hook {
        ident: method.sig.ident.clone(),
        span: method.sig.span(),
        ctx_span: ctx_span(&method.sig),
    });
    if name == "enter" {
        model.enter = hook;
    } else {
        model.exit = hook;
    }
    true
}

fn is_mut_ref(arg: &FnArg) -> bool {
    matches!(arg, FnArg::Typed(arg) if matches!(&*arg.ty, Type::Reference(r) if r.mutability.is_some()))
}

/// The span of the `Ctx` in `ctx: &mut Ctx<Self>`, where a mismatch is best reported.
fn ctx_span(sig: &Signature) -> Span {
    match sig.inputs.iter().nth(1) {
        Some(FnArg::Typed(arg)) => match &*arg.ty {
            Type::Reference(r) => r.elem.span(),
            other => other.span(),
        },
        _ => sig.ident.span(),
    }
}

/// Checks `async`, no generics, `&mut self`, a `&mut` ctx and the number of arguments.
fn check_signature(
    sig: &Signature,
    what: &str,
    shape: &str,
    arity: usize,
    kind: Option<Kind>,
    errors: &mut Errors,
) -> bool {
    let mut ok = true;
    if sig.asyncness.is_none() {
        errors.spanned(sig.fn_token, format!("{what} must be `async fn`"));
        ok = false;
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
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
                format!("the first argument of {what} must be `&mut self`"),
            );
            ok = false;
        }
        None => {
            errors.spanned(
                &sig.ident,
                format!("the first argument of {what} must be `&mut self`"),
            );
            ok = false;
        }
    }
    let count = sig.inputs.len();
    let second_is_ctx = sig.inputs.iter().nth(1).is_some_and(is_mut_ref);
    if count != arity {
        // Name the argument that is most likely missing, so one mistake gives one error.
        let hint = if count < arity && !second_is_ctx {
            "; `ctx: &mut Ctx<Self>` is missing"
        } else if count < arity && kind == Some(Kind::Up) {
            "; add `from: ChildId` before the message"
        } else {
            ""
        };
        let message = format!("{what} must have {arity} arguments: `{shape}`{hint}");
        if sig.inputs.is_empty() {
            errors.spanned(&sig.ident, message);
        } else {
            errors.spanned(&sig.inputs, message);
        }
        ok = false;
    } else if let Some(FnArg::Typed(second)) = sig.inputs.iter().nth(1)
        && !second_is_ctx
    {
        errors.spanned(
            &second.ty,
            format!("the second argument of {what} must be `ctx: &mut Ctx<Self>`"),
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
        parse_task_args(attr, errors)
    } else {
        if !matches!(attr.meta, syn::Meta::Path(_)) {
            errors.spanned(
                attr,
                format!(
                    "`{}` takes no arguments; write `{}`",
                    kind.attr(),
                    kind.attr()
                ),
            );
        }
        TaskArgs::default()
    };
    let sig = &method.sig;
    let what = format!("`{}` {}", kind.attr(), kind.what());
    if !check_signature(sig, &what, kind.shape(), kind.arity(), Some(kind), errors) {
        return None;
    }
    let msg = match sig.inputs.iter().last() {
        Some(FnArg::Typed(arg)) if kind != Kind::Rescheduling => Some((*arg.ty).clone()),
        _ => None,
    };
    if let Some(msg) = &msg {
        if let Type::Reference(r) = msg {
            errors.spanned(
                r,
                format!(
                    "{what} take their message by value, not by reference: messages move between threads"
                ),
            );
            return None;
        }
        if matches!(msg, Type::ImplTrait(_) | Type::Infer(_)) {
            errors.spanned(msg, format!("{what} need a concrete message type"));
            return None;
        }
    }
    let output = parse_output(&sig.output);
    match (kind, &output) {
        (Kind::Down, Output::Unit | Output::Value(_)) => {}
        (Kind::Up | Kind::Stream, Output::Unit) => {}
        (Kind::Rescheduling, Output::Reschedule) => {}
        (Kind::Up | Kind::Stream, Output::Value(ty)) => {
            errors.spanned(
                ty,
                format!(
                    "{what} return nothing or `Result<()>`; only `#[down]` handlers can answer"
                ),
            );
            return None;
        }
        (Kind::Down | Kind::Up | Kind::Stream, Output::Reschedule) => {
            errors.spanned(
                &sig.output,
                format!("{what} return nothing or `Result<()>`; only `#[rescheduling]` tasks return `Reschedule`"),
            );
            return None;
        }
        (Kind::Down, Output::Other(ty)) => {
            errors.spanned(
                ty,
                format!("{what} return nothing, `Result<()>`, or `Result<Answer>` to be asked"),
            );
            return None;
        }
        (Kind::Up | Kind::Stream, Output::Other(ty)) => {
            errors.spanned(ty, format!("{what} return nothing or `Result<()>`"));
            return None;
        }
        (Kind::Rescheduling, _) => {
            let message = "`#[rescheduling]` tasks return `Result<Reschedule>` (or `Reschedule`) to say when they run next";
            match &sig.output {
                ReturnType::Default => errors.spanned(
                    &sig.ident,
                    format!("{message}: add `-> Result<Reschedule>`"),
                ),
                ReturnType::Type(_, ty) => errors.spanned(ty, message),
            }
            return None;
        }
    }
    Some(Handler {
        kind,
        ident: sig.ident.clone(),
        msg,
        output,
        task,
        span: sig.span(),
        ctx_span: ctx_span(sig),
    })
}

fn is_reschedule(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Reschedule"))
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
    if is_reschedule(ty) {
        return Output::Reschedule;
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
        if is_reschedule(ok) {
            return Output::Reschedule;
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
