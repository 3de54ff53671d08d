//! The model of a `#[taskthread]` impl block, keeping the original syn nodes for spans.
//!
//! A method in error is reported and still modelled as well as its signature allows, with
//! the message type it declares: the generated dispatch keeps its place, so the one mistake
//! does not also surface as "no handler" errors wherever the message is sent.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ImplItem, ImplItemFn, ItemImpl,
    PathArguments, ReceiverKind, ReturnType, Signature, Type, WherePredicate,
};

use crate::attr::{TaskArgs, closest, parse_task_args};
use crate::diag::{Errors, type_string};

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

/// What a method returns, as far as its tokens tell. The type checker has the last word:
/// the generated code converts the output through a trait chosen by the kind of method
/// (`UnitOutput`, `AnswerOutput` or `TaskOutput`), so an alias of any name works.
pub(crate) enum Output {
    /// Nothing, `()`, or a generic type whose first argument is `()` (`Result<()>`,
    /// `io::Result<()>`, `MyResult<(), E>`).
    Unit,
    /// `Result<T>` or `Result<T, E>` with `T` not `()`.
    Value(Box<Type>),
    /// Anything else, e.g. an alias without arguments: left to the type checker.
    Other,
}

/// The `#[cfg(...)]` predicates of a method, which every item generated for it carries.
#[derive(Clone, Default)]
pub(crate) struct Cfg(Vec<TokenStream>);

impl Cfg {
    fn of(attrs: &[Attribute]) -> Self {
        Cfg(attrs
            .iter()
            .filter(|attr| attr.path().is_ident("cfg"))
            .filter_map(|attr| attr.meta.require_list().ok())
            .map(|list| list.tokens.clone())
            .collect())
    }

    /// The predicate that holds when the method is compiled in, if it has any `#[cfg]`.
    pub(crate) fn predicate(&self) -> Option<TokenStream> {
        match self.0.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            all => Some(quote::quote!(all(#(#all),*))),
        }
    }

    /// `#[cfg(...)]`, or nothing.
    pub(crate) fn attr(&self) -> TokenStream {
        match self.predicate() {
            Some(predicate) => quote::quote!(#[cfg(#predicate)]),
            None => TokenStream::new(),
        }
    }

    /// A key telling methods under different `#[cfg]`s apart.
    pub(crate) fn key(&self) -> String {
        self.predicate().map(|p| p.to_string()).unwrap_or_default()
    }
}

/// The return type of a method, for the generated conversion of its output.
pub(crate) struct Returns {
    /// The type as written (`()` if there is none), with the method's own lifetimes made
    /// `'_`, so that it can be named in the generated code.
    pub(crate) ty: Type,
    /// Where an error about the output lands: the return type as written, from its first
    /// token to its last.
    pub(crate) span: Span,
    pub(crate) last: Span,
    /// The error type as written (`E` in `Result<T, E>`), from its first token to its
    /// last, where an error type that does not convert is best reported.
    pub(crate) error: Option<(Span, Span)>,
}

pub(crate) struct Handler {
    pub(crate) kind: Kind,
    pub(crate) ident: Ident,
    /// The message, up or item type (none for tasks).
    pub(crate) msg: Option<Type>,
    pub(crate) output: Output,
    pub(crate) returns: Returns,
    pub(crate) task: TaskArgs,
    pub(crate) cfg: Cfg,
    /// Whether the signature is right, so the generated dispatch can call the method. One
    /// that is not keeps its place in the dispatch, with a body that is never run: its
    /// error is already reported.
    pub(crate) callable: bool,
    /// Where compiler errors about the call of the method land: its signature.
    pub(crate) span: Span,
    /// Where a type mismatch of the `ctx` argument lands: the type the user wrote.
    pub(crate) ctx_span: Span,
}

impl Handler {
    /// Whether it is asked: a `#[down]` handler that returns something else than `()`.
    pub(crate) fn answers(&self) -> bool {
        self.kind == Kind::Down && !matches!(self.output, Output::Unit)
    }
}

pub(crate) struct Hook {
    pub(crate) ident: Ident,
    pub(crate) returns: Returns,
    pub(crate) cfg: Cfg,
    pub(crate) span: Span,
    pub(crate) ctx_span: Span,
}

pub(crate) struct Model {
    pub(crate) handlers: Vec<Handler>,
    /// Every `enter` hook, each under its own `#[cfg]` (usually one, without).
    pub(crate) enter: Vec<Hook>,
    pub(crate) exit: Vec<Hook>,
}

const KINDS: [(&str, Kind); 4] = [
    ("down", Kind::Down),
    ("up", Kind::Up),
    ("stream", Kind::Stream),
    ("rescheduling", Kind::Rescheduling),
];

/// Attributes of methods that the compiler and common tools know: never taken for a
/// misspelt handler attribute.
const KNOWN_ATTRS: [&str; 19] = [
    "allow",
    "cfg",
    "cfg_attr",
    "cold",
    "deny",
    "deprecated",
    "doc",
    "expect",
    "forbid",
    "ignore",
    "inline",
    "instrument",
    "must_use",
    "no_mangle",
    "rustfmt",
    "should_panic",
    "test",
    "track_caller",
    "warn",
];

/// Reads the impl block, removing the handler attributes as it goes so the item can be
/// emitted as is.
pub(crate) fn parse(item: &mut ItemImpl, errors: &mut Errors) -> Model {
    let mut model = Model {
        handlers: Vec::new(),
        enter: Vec::new(),
        exit: Vec::new(),
    };
    let self_ty = (*item.self_ty).clone();
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else {
            continue;
        };
        let attrs = take_kind_attrs(method, errors);
        let Some((kind, attr)) = attrs.first() else {
            if parse_hook(method, &self_ty, &mut model, errors) {
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
        let handler = parse_handler(*kind, attr, method, &self_ty, errors);
        model.handlers.push(handler);
        allow_unused_async(method);
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

/// Takes the handler attributes off a method. An unknown attribute one edit away from a
/// handler attribute (`#[donw]`) is reported with the likely fix and read as that one, so
/// the method keeps its place in the dispatch.
fn take_kind_attrs(method: &mut ImplItemFn, errors: &mut Errors) -> Vec<(Kind, Attribute)> {
    let mut found = Vec::new();
    method.attrs.retain(|attr| {
        let Some(ident) = attr.path().get_ident() else {
            return true;
        };
        let name = ident.unraw().to_string();
        if let Some(&(_, kind)) = KINDS.iter().find(|(n, _)| *n == name) {
            found.push((kind, attr.clone()));
            return false;
        }
        if KNOWN_ATTRS.contains(&name.as_str()) {
            return true;
        }
        let names = KINDS.map(|(n, _)| n);
        let Some(known) = closest(&name, &names) else {
            return true;
        };
        errors.spanned(
            attr.path(),
            format!("unknown attribute `#[{name}]`; did you mean `#[{known}]`?"),
        );
        let kind = KINDS.iter().find(|(n, _)| *n == known).map(|(_, k)| *k);
        if let Some(kind) = kind {
            found.push((kind, attr.clone()));
        }
        false
    });
    found
}

/// Reads `enter` or `exit`; returns whether the method is a valid hook.
fn parse_hook(method: &ImplItemFn, self_ty: &Type, model: &mut Model, errors: &mut Errors) -> bool {
    let name = method.sig.ident.unraw().to_string();
    if name != "enter" && name != "exit" {
        return false;
    }
    let what = format!("the `{name}` hook");
    let shape = "(&mut self, ctx: &mut Ctx<Self>)";
    if !check_signature(&method.sig, self_ty, &what, shape, 2, None, errors) {
        return false;
    }
    let wrong = match parse_output(&method.sig.output) {
        Output::Unit => None,
        Output::Value(ok) => Some(*ok),
        Output::Other => plain_return(&method.sig).cloned(),
    };
    if let Some(ty) = wrong {
        errors.spanned(ty, format!("{what} returns nothing or `Result<()>`"));
        return false;
    }
    let hook = Hook {
        ident: method.sig.ident.clone(),
        returns: returns(&method.sig),
        cfg: Cfg::of(&method.attrs),
        span: method.sig.span(),
        ctx_span: ctx_span(&method.sig),
    };
    if name == "enter" {
        model.enter.push(hook);
    } else {
        model.exit.push(hook);
    }
    true
}

fn is_mut_ref(arg: &FnArg) -> bool {
    matches!(arg, FnArg::Typed(arg) if matches!(&*arg.ty, Type::Reference(r) if r.mutability.is_some()))
}

/// Whether the receiver is `&mut self`, `&'a mut self`, or `self: &mut Self` with `Self`
/// written as `Self` or as the impl's type.
fn is_mut_self(arg: &FnArg, self_ty: &Type) -> bool {
    let FnArg::Receiver(receiver) = arg else {
        return false;
    };
    match &receiver.kind {
        ReceiverKind::Reference(_, _, mutability) => mutability.is_some(),
        ReceiverKind::Typed(_, ty) => match &**ty {
            Type::Reference(r) if r.mutability.is_some() => {
                let elem = r.elem.to_token_stream().to_string();
                elem == "Self" || elem == self_ty.to_token_stream().to_string()
            }
            _ => false,
        },
        _ => false,
    }
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

/// The lifetimes a method declares itself.
fn own_lifetimes(sig: &Signature) -> Vec<String> {
    sig.generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Lifetime(l) => Some(l.lifetime.ident.to_string()),
            _ => None,
        })
        .collect()
}

fn returns(sig: &Signature) -> Returns {
    match &sig.output {
        ReturnType::Default => Returns {
            ty: syn::parse_quote!(()),
            span: sig.ident.span(),
            last: sig.ident.span(),
            error: None,
        },
        ReturnType::Type(_, ty) => Returns {
            ty: replace_lifetimes(ty, &own_lifetimes(sig), "_"),
            span: ty.span(),
            last: last_span(ty),
            error: error_type(ty).map(|e| (e.span(), last_span(e))),
        },
    }
}

fn last_span(ty: &Type) -> Span {
    ty.to_token_stream()
        .into_iter()
        .last()
        .map_or_else(|| ty.span(), |t| t.span())
}

/// `E` in `Result<T, E>` (of any name).
fn error_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    match args.args.iter().nth(1)? {
        GenericArgument::Type(error) => Some(error),
        _ => None,
    }
}

/// `ty` with the lifetimes in `names` (every one but `'static` if `names` is empty)
/// replaced by `'replacement`, keeping the spans.
fn replace_lifetimes(ty: &Type, names: &[String], replacement: &str) -> Type {
    fn walk(tokens: TokenStream, names: &[String], replacement: &str) -> TokenStream {
        let mut out = Vec::new();
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Punct(p) if p.as_char() == '\'' => {
                    out.push(TokenTree::Punct(p));
                    if let Some(TokenTree::Ident(ident)) = tokens.next() {
                        let name = ident.to_string();
                        let replace = if names.is_empty() {
                            name != "static"
                        } else {
                            names.contains(&name)
                        };
                        out.push(TokenTree::Ident(if replace {
                            Ident::new(replacement, ident.span())
                        } else {
                            ident
                        }));
                    }
                }
                TokenTree::Group(g) => {
                    let mut group = proc_macro2::Group::new(
                        g.delimiter(),
                        walk(g.stream(), names, replacement),
                    );
                    group.set_span(g.span());
                    out.push(TokenTree::Group(group));
                }
                other => out.push(other),
            }
        }
        out.into_iter().collect()
    }
    let tokens = walk(ty.to_token_stream(), names, replacement);
    syn::parse2(tokens).unwrap_or_else(|_| ty.clone())
}

/// The lifetimes other than `'static` in a type.
fn borrowed_lifetimes(ty: &Type) -> Vec<String> {
    fn walk(tokens: TokenStream, found: &mut Vec<String>) {
        let mut tokens = tokens.into_iter();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Punct(p) if p.as_char() == '\'' => {
                    if let Some(TokenTree::Ident(ident)) = tokens.next()
                        && ident != "static"
                    {
                        found.push(format!("'{ident}"));
                    }
                }
                TokenTree::Group(g) => walk(g.stream(), found),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(ty.to_token_stream(), &mut found);
    found
}

/// Checks `async`, no generic types, `&mut self`, a `&mut` ctx and the number of arguments.
fn check_signature(
    sig: &Signature,
    self_ty: &Type,
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
    let only_lifetimes = sig
        .generics
        .params
        .iter()
        .all(|p| matches!(p, GenericParam::Lifetime(_)))
        && sig.generics.where_clause.as_ref().is_none_or(|w| {
            w.predicates
                .iter()
                .all(|p| matches!(p, WherePredicate::Lifetime(_)))
        });
    if !only_lifetimes {
        errors.spanned(
            &sig.generics,
            format!("{what} cannot have generic parameters; make the thread type generic instead"),
        );
        ok = false;
    }
    match sig.inputs.first() {
        Some(first) if is_mut_self(first, self_ty) => {}
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

/// The last path segment of a type, if it is a plain path.
fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) if p.qself.is_none() => {
            p.path.segments.last().map(|s| s.ident.unraw().to_string())
        }
        Type::Paren(t) => last_segment(&t.elem),
        Type::Group(t) => last_segment(&t.elem),
        _ => None,
    }
}

/// The message type a handler declares: its last argument, or, when the arguments are not
/// as expected, the last one that is neither the receiver nor `&mut` (the ctx).
fn declared_message(sig: &Signature, kind: Kind) -> Option<Type> {
    if kind == Kind::Rescheduling {
        return None;
    }
    let typed = sig.inputs.iter().filter_map(|arg| match arg {
        FnArg::Typed(arg) => Some(&*arg.ty),
        FnArg::Receiver(_) => None,
    });
    if sig.inputs.len() == kind.arity() {
        return typed.last().cloned();
    }
    typed
        .filter(|ty| !matches!(ty, Type::Reference(r) if r.mutability.is_some()))
        .filter(|ty| kind != Kind::Up || last_segment(ty).as_deref() != Some("ChildId"))
        .last()
        .cloned()
}

fn parse_handler(
    kind: Kind,
    attr: &Attribute,
    method: &ImplItemFn,
    self_ty: &Type,
    errors: &mut Errors,
) -> Handler {
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
    let mut callable = check_signature(
        sig,
        self_ty,
        &what,
        kind.shape(),
        kind.arity(),
        Some(kind),
        errors,
    );
    let mut msg = declared_message(sig, kind);
    if kind == Kind::Up
        && callable
        && let [.., FnArg::Typed(from), FnArg::Typed(last)] =
            sig.inputs.iter().collect::<Vec<_>>().as_slice()
        && last_segment(&last.ty).as_deref() == Some("ChildId")
        && last_segment(&from.ty).as_deref() != Some("ChildId")
    {
        errors.spanned(
            &last.ty,
            format!(
                "the sender's `ChildId` comes before the message: `(&mut self, ctx: &mut Ctx<Self>, from: ChildId, msg: {})`; swap the last two arguments",
                type_string(&from.ty)
            ),
        );
        msg = Some((*from.ty).clone());
        callable = false;
    }
    if let Some(ty) = msg.take() {
        msg = check_message(ty, &what, errors, &mut callable);
    }
    let mut output = parse_output(&sig.output);
    if !check_output(kind, &output, sig, &what, errors) {
        // Generated as a handler that answers nothing, so its output brings no second error.
        output = Output::Unit;
        callable = false;
    }
    if let Output::Value(answer) = &output {
        let borrowed = borrowed_lifetimes(answer);
        if kind == Kind::Down && !borrowed.is_empty() {
            errors.spanned(
                answer,
                format!(
                    "an answer cannot borrow (`{}`): it moves to the asking thread; use an owned type, or `'static`",
                    borrowed.join("`, `")
                ),
            );
            output = Output::Value(Box::new(replace_lifetimes(answer, &[], "static")));
            callable = false;
        }
    }
    Handler {
        kind,
        ident: sig.ident.clone(),
        msg,
        output,
        returns: returns(sig),
        task,
        cfg: Cfg::of(&method.attrs),
        callable,
        span: sig.span(),
        ctx_span: ctx_span(sig),
    }
}

/// Checks a message type; returns the type the dispatch uses for it, if any.
fn check_message(ty: Type, what: &str, errors: &mut Errors, callable: &mut bool) -> Option<Type> {
    match ty {
        Type::Reference(r) => {
            errors.spanned(
                &r,
                format!(
                    "{what} take their message by value, not by reference: messages move between threads"
                ),
            );
            *callable = false;
            check_message(*r.elem, what, &mut Errors::default(), callable)
        }
        Type::ImplTrait(_) | Type::Infer(_) => {
            errors.spanned(&ty, format!("{what} need a concrete message type"));
            *callable = false;
            None
        }
        ty => {
            let borrowed = borrowed_lifetimes(&ty);
            if borrowed.is_empty() {
                return Some(ty);
            }
            errors.spanned(
                &ty,
                format!(
                    "a message cannot borrow (`{}`): it moves to another thread's queue; use an owned type, or `'static`",
                    borrowed.join("`, `")
                ),
            );
            *callable = false;
            Some(replace_lifetimes(&ty, &[], "static"))
        }
    }
}

/// Checks the output a kind of method may have, as far as its tokens tell.
fn check_output(
    kind: Kind,
    output: &Output,
    sig: &Signature,
    what: &str,
    errors: &mut Errors,
) -> bool {
    if let (Output::Other, Some(ty)) = (output, plain_return(sig)) {
        let message = match kind {
            Kind::Down => {
                format!("{what} return nothing, `Result<()>`, or `Result<Answer>` to be asked")
            }
            Kind::Up | Kind::Stream => format!("{what} return nothing or `Result<()>`"),
            Kind::Rescheduling => "`#[rescheduling]` tasks return `Result<Reschedule>` (or `Reschedule`) to say when they run next".to_owned(),
        };
        errors.spanned(ty, message);
        return false;
    }
    match (kind, output) {
        (Kind::Down, _) | (Kind::Up | Kind::Stream, Output::Unit | Output::Other) => true,
        (Kind::Up | Kind::Stream, Output::Value(ty)) => {
            let hint = if last_segment(ty).as_deref() == Some("Reschedule") {
                "; only `#[rescheduling]` tasks return `Reschedule`"
            } else {
                "; only `#[down]` handlers can answer"
            };
            errors.spanned(ty, format!("{what} return nothing or `Result<()>`{hint}"));
            false
        }
        (Kind::Rescheduling, Output::Value(ty)) if !is_plain(ty) => true,
        (Kind::Rescheduling, Output::Other) => true,
        (Kind::Rescheduling, _) => {
            let message = "`#[rescheduling]` tasks return `Result<Reschedule>` (or `Reschedule`) to say when they run next";
            match &sig.output {
                ReturnType::Default => errors.spanned(
                    &sig.ident,
                    format!("{message}: add `-> Result<Reschedule>`"),
                ),
                ReturnType::Type(_, ty) => errors.spanned(ty, message),
            }
            false
        }
    }
}

/// The return type, if it is plain (see [`is_plain`]).
fn plain_return(sig: &Signature) -> Option<&Type> {
    match &sig.output {
        ReturnType::Type(_, ty) if is_plain(ty) => Some(ty),
        _ => None,
    }
}

/// A type that no alias can hide, so it is neither `Result` nor `Reschedule`: a tuple, a
/// reference, an array, a primitive type.
pub(crate) fn is_plain(ty: &Type) -> bool {
    const PRIMITIVES: [&str; 17] = [
        "bool", "char", "str", "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32",
        "i64", "i128", "isize", "f32", "f64",
    ];
    match ty {
        Type::Path(p) => p
            .path
            .get_ident()
            .is_some_and(|i| PRIMITIVES.contains(&i.to_string().as_str())),
        Type::Paren(t) => is_plain(&t.elem),
        Type::Group(t) => is_plain(&t.elem),
        Type::Tuple(_)
        | Type::Reference(_)
        | Type::Array(_)
        | Type::Slice(_)
        | Type::Ptr(_)
        | Type::FnPtr(_)
        | Type::Never(_) => true,
        _ => false,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(t) if t.elems.is_empty())
}

fn parse_output(output: &ReturnType) -> Output {
    let ReturnType::Type(_, ty) = output else {
        return Output::Unit;
    };
    if is_unit(ty) {
        return Output::Unit;
    }
    if let Type::Path(p) = &**ty
        && p.qself.is_none()
        && let Some(last) = p.path.segments.last()
        && let PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        if is_unit(ok) {
            return Output::Unit;
        }
        if last.ident.unraw() == "Result" {
            return Output::Value(Box::new(ok.clone()));
        }
    }
    Output::Other
}
