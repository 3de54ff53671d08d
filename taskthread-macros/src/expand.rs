//! Code generation: the message and event enums, the `Thread` impl with its dispatch, the
//! `Accepts` / `Asks` / `HandlesUp` / `HandlesStream` impls, and the task name constants.
//!
//! Everything but the user's own impl block goes inside one `const _: () = { ... };`, so
//! nothing generated can clash with another expansion (two types of one name, two
//! instantiations of one generic type) or with the user's names. Inside it, runtime items
//! are named through `__tt`, the one import of the taskthread crate; the macro's own
//! bindings are on `Span::mixed_site()`, and every other path is fully qualified.

use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{GenericParam, ItemImpl, Path, Type, WherePredicate, parse_quote};

use crate::ast::{self, Handler, Hook, Kind, Model, Output, Returns};
use crate::attr::{self, Missed};
use crate::diag::{Errors, type_string};

pub(crate) fn taskthread(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let mut item: ItemImpl = syn::parse2(input)?;
    let mut errors = Errors::default();
    let mut args = attr::parse_thread_args(args, &mut errors);
    let can_generate = crate::valid::check_impl(&item, &mut errors);
    let mut model = ast::parse(&mut item, &mut errors);
    crate::valid::check_model(&item, &mut model, &mut errors);
    crate::valid::check_pass_up(&item, &mut args, &mut model, &mut errors);
    // On error, still emit the item (handler attributes stripped) and the code for every
    // handler, next to the errors: IDEs keep working, and the user sees the errors that
    // matter rather than follow-on ones about a missing `Thread` impl or handler.
    let generated = if can_generate {
        add_thread_bounds(&mut item);
        let krate = crate_path(&args, &mut errors);
        Generator::new(&item, &args, &model, krate, &mut errors).generate()
    } else {
        TokenStream::new()
    };
    let compile_errors = errors.finish().err().map(syn::Error::into_compile_error);
    Ok(quote!(#item #generated #compile_errors))
}

/// Where the taskthread crate is: `crate = "..."`, else its name in the user's Cargo.toml
/// (it may be renamed there), else `::taskthread`.
fn crate_path(args: &attr::ThreadArgs, errors: &mut Errors) -> Path {
    use proc_macro_crate::{Error, FoundCrate, crate_name};

    if let Some(path) = &args.krate {
        return path.clone();
    }
    match crate_name("taskthread") {
        Ok(FoundCrate::Name(name)) => {
            let name = Ident::new(&name, Span::call_site());
            parse_quote!(::#name)
        }
        Ok(FoundCrate::Itself) => parse_quote!(::taskthread),
        Err(Error::CrateNotFound { .. }) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "`taskthread` is not a dependency of this crate; if it comes through a crate that re-exports it, say where: `#[taskthread(crate = \"path::to::taskthread\")]`",
            ));
            parse_quote!(::taskthread)
        }
        // No manifest to read (a build without Cargo): the usual name.
        Err(_) => parse_quote!(::taskthread),
    }
}

/// A thread lives on its own task: every type parameter must be `Send + 'static`. The bound
/// goes on the user's impl block too, since its methods name `Ctx<Self>`, which needs
/// `Self: Thread`. (A lifetime parameter is an error; bounding it by `'static` here keeps
/// that error the only one.)
fn add_thread_bounds(item: &mut ItemImpl) {
    let predicates: Vec<WherePredicate> = item
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            // Spanned at the call site: the bounds are the macro's, not the user's, and lints
            // on the user's code (clippy's `multiple_bound_locations`) must not see them.
            GenericParam::Type(t) => {
                let ident = Ident::new(&t.ident.to_string(), Span::call_site());
                Some(parse_quote!(#ident: ::core::marker::Send + 'static))
            }
            GenericParam::Lifetime(l) => {
                let lifetime = syn::Lifetime {
                    apostrophe: Span::call_site(),
                    ident: Ident::new(&l.lifetime.ident.to_string(), Span::call_site()),
                };
                Some(parse_quote!(#lifetime: 'static))
            }
            GenericParam::Const(_) => None,
        })
        .collect();
    if predicates.is_empty() {
        return;
    }
    item.generics
        .make_where_clause()
        .predicates
        .extend(predicates);
}

/// A binding of the generated code: on `Span::mixed_site()`, so nothing the user's module
/// defines (a static or unit struct of the same name) can change what it means.
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// A binding of the generated code, placed on the user's tokens for error messages.
fn local_at(name: &str, span: Span) -> Ident {
    Ident::new(name, Span::mixed_site().located_at(span))
}

struct Generator<'a> {
    item: &'a ItemImpl,
    args: &'a attr::ThreadArgs,
    model: &'a Model,
    krate: Path,
    /// The thread type's name, without `r#`.
    name: String,
    /// The names of the task constants, in the order of the tasks (`None` if none can be
    /// made from the method's name, which is reported).
    task_consts: Vec<Option<Ident>>,
}

impl<'a> Generator<'a> {
    fn new(
        item: &'a ItemImpl,
        args: &'a attr::ThreadArgs,
        model: &'a Model,
        krate: Path,
        errors: &mut Errors,
    ) -> Self {
        let name = match &*item.self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| s.ident.unraw().to_string()),
            _ => None,
        }
        .unwrap_or_else(|| "Thread".to_owned());
        let task_consts = model
            .handlers
            .iter()
            .filter(|h| h.kind == Kind::Rescheduling)
            .map(|h| {
                let name = task_const_name(&h.ident);
                if name.is_none() {
                    errors.spanned(
                        &h.ident,
                        format!(
                            "no constant name can be made from `{}` by upper-casing it; rename the task",
                            h.ident.unraw()
                        ),
                    );
                }
                name
            })
            .collect();
        Self {
            item,
            args,
            model,
            krate,
            name,
            task_consts,
        }
    }

    /// The handlers of one kind that take part in the dispatch, with their index among
    /// them (a variant name or a task index).
    fn handlers(&self, kind: Kind) -> impl Iterator<Item = (usize, &'a Handler)> + 'a {
        self.model
            .handlers
            .iter()
            .filter(move |h| h.kind == kind && (kind == Kind::Rescheduling || h.msg.is_some()))
            .enumerate()
    }

    fn msg(&self, h: &Handler) -> TokenStream {
        replace_self(
            h.msg.as_ref().expect("dispatched handlers have a message"),
            &self.item.self_ty,
        )
    }

    /// The answer type of an asked handler.
    fn reply(&self, h: &Handler) -> TokenStream {
        match &h.output {
            Output::Value(ty) => replace_self(ty, &self.item.self_ty),
            _ => {
                let ret = replace_self(&h.returns.ty, &self.item.self_ty);
                quote!(<#ret as __tt::__private::AnswerOutput>::Ok)
            }
        }
    }

    /// What the generated enums hold in their phantom variant: every type parameter, and a
    /// reference for every lifetime (only there on the error path), so none is unused.
    fn phantom_params(&self) -> Vec<TokenStream> {
        self.item
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => {
                    let ident = &t.ident;
                    Some(quote!(#ident))
                }
                GenericParam::Lifetime(l) => {
                    let lifetime = &l.lifetime;
                    Some(quote!(&#lifetime ()))
                }
                GenericParam::Const(_) => None,
            })
            .collect()
    }

    fn generate(&self) -> TokenStream {
        let krate = &self.krate;
        let message_checks = self.message_checks();
        let enums = self.enums();
        let thread_impl = self.thread_impl();
        let accepts = self.accepts_impls();
        let by_reference = self.by_reference_impls();
        let up_impls = self.up_impls();
        let placeholders = self.placeholder_impls();
        let tasks = self.task_consts();
        let report_checks = self.child_report_checks();
        let remote = self.remote_impl();
        quote! {
            const _: () = {
                use #krate as __tt;
                #message_checks
                #enums
                #thread_impl
                #accepts
                #by_reference
                #up_impls
                #placeholders
                #tasks
                #report_checks
                #remote
            };
        }
    }

    fn enums(&self) -> TokenStream {
        let params = self.phantom_params();
        let (_, _, where_clause) = self.item.generics.split_for_impl();
        let enum_params = &self.item.generics.params;
        let phantom = if params.is_empty() {
            quote!()
        } else {
            quote! {
                __Phantom(
                    ::core::marker::PhantomData<fn() -> (#(#params,)*)>,
                    ::core::convert::Infallible,
                ),
            }
        };
        let down_variants = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let ty = self.msg(h);
            let cfg = h.cfg.attr();
            if h.answers() {
                let reply = self.reply(h);
                quote!(#cfg #v(#ty, ::core::option::Option<__tt::__private::Reply<#reply>>),)
            } else {
                quote!(#cfg #v(#ty),)
            }
        });
        let up_variants = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let ty = self.msg(h);
            let cfg = h.cfg.attr();
            if boxes_up_message(h) {
                quote!(#cfg #v(__tt::__private::ChildId, ::std::boxed::Box<#ty>),)
            } else {
                quote!(#cfg #v(__tt::__private::ChildId, #ty),)
            }
        });
        let stream_variants = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let ty = self.msg(h);
            let cfg = h.cfg.attr();
            quote!(#cfg #v(#ty),)
        });
        // A message of the up type that reaches a `pass_up` thread's own queue all the same
        // goes on UP from its loop. Boxed: never reached by the children `parent_port`
        // starts, it would otherwise size every slot of the thread's inbound queue.
        let pass_variant = self.passes_up().then(|| {
            let up_ty = self.up_ty();
            quote!(__Pass(__tt::__private::ChildId, ::std::boxed::Box<#up_ty>),)
        });
        let attrs = quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, private_interfaces, unreachable_pub, dead_code, missing_docs, missing_debug_implementations, clippy::large_enum_variant)]
        };
        quote! {
            #attrs
            pub enum __Down<#enum_params> #where_clause {
                #(#down_variants)*
                #phantom
            }
            #attrs
            pub enum __Event<#enum_params> #where_clause {
                #(#up_variants)*
                #pass_variant
                #(#stream_variants)*
                #phantom
            }
        }
    }

    fn phantom_arm(&self, enum_ty: TokenStream) -> TokenStream {
        if self.phantom_params().is_empty() {
            quote!()
        } else {
            let never = local("__never");
            quote!(#enum_ty::__Phantom(_, #never) => match #never {},)
        }
    }

    /// The call of a handler or hook, converted into the framework's `Result`: an
    /// expression of type `Result<Ok>`.
    fn call(
        &self,
        method: &Ident,
        span: Span,
        ctx_span: Span,
        returns: &Returns,
        output: OutputTrait,
        args: TokenStream,
    ) -> TokenStream {
        let ctx = local_at("__ctx", ctx_span);
        let out = local("__out");
        let call = quote_spanned!(span=> Self::#method(self, #ctx, #args).await);
        let convert = convert_output(returns, output, &out);
        quote!({
            let #out = #call;
            #convert
        })
    }

    /// The run of a thread's only `#[rescheduling]` task: the method's future itself,
    /// its output converted as it comes, so the run keeps nothing beside the method's future.
    fn task_run(&self, h: &Handler) -> TokenStream {
        let ctx = local_at("__ctx", h.ctx_span);
        let out = local("__out");
        let method = &h.ident;
        let call = quote_spanned!(h.span=> Self::#method(self, #ctx));
        let convert = convert_output(&h.returns, OutputTrait::Task, &out);
        quote!(__tt::__private::TaskRun::__new(#call, |#out| #convert))
    }

    fn call_handler(&self, h: &Handler, args: TokenStream) -> TokenStream {
        let output = match h.kind {
            Kind::Rescheduling => OutputTrait::Task,
            _ if h.answers() => OutputTrait::Answer,
            _ => OutputTrait::Unit,
        };
        self.call(&h.ident, h.span, h.ctx_span, &h.returns, output, args)
    }

    /// The body of `__enter` or `__exit`: the hook under its `#[cfg]`, or nothing.
    fn hook(&self, hooks: &[Hook]) -> TokenStream {
        let ctx = local("__ctx");
        let default = quote! {
            let _ = (self, #ctx);
            ::core::result::Result::Ok(())
        };
        if let Some(hook) = hooks.iter().find(|h| h.cfg.predicate().is_none()) {
            let call = self.call(
                &hook.ident,
                hook.span,
                hook.ctx_span,
                &hook.returns,
                OutputTrait::Unit,
                quote!(),
            );
            return quote!(async move { #call });
        }
        if hooks.is_empty() {
            return quote!(async move { #default });
        }
        let calls = hooks.iter().map(|hook| {
            let cfg = hook.cfg.attr();
            let call = self.call(
                &hook.ident,
                hook.span,
                hook.ctx_span,
                &hook.returns,
                OutputTrait::Unit,
                quote!(),
            );
            quote!(#cfg return #call;)
        });
        let predicates = hooks.iter().filter_map(|h| h.cfg.predicate());
        quote! {
            async move {
                #(#calls)*
                #[cfg(not(any(#(#predicates),*)))]
                return { #default };
            }
        }
    }

    fn thread_impl(&self) -> TokenStream {
        let self_ty = &self.item.self_ty;
        let (impl_generics, ty_generics, where_clause) = self.item.generics.split_for_impl();
        let up_ty = self.up_ty();
        let type_name = &self.name;
        let default_name = match &self.args.name {
            Some(lit) => lit.value(),
            None => snake_case(type_name),
        };
        let down_types = self.handlers(Kind::Down).map(|(_, h)| {
            let cfg = h.cfg.attr();
            let name = type_string(h.msg.as_ref().expect("dispatched handlers have a message"));
            quote!(#cfg #name)
        });
        let up_type = match &self.args.up {
            Some(ty) => {
                let s = type_string(ty);
                quote!(::core::option::Option::Some(#s))
            }
            None => quote!(::core::option::Option::None),
        };
        let capacity = self
            .args
            .capacity
            .as_ref()
            .map(|lit| quote!(const CAPACITY: ::core::primitive::usize = #lit;));
        let tasks = self.handlers(Kind::Rescheduling).map(|(_, h)| {
            let cfg = h.cfg.attr();
            let spec = task_spec(h);
            quote!(#cfg #spec)
        });
        // Room for a timetable in the thread's task only if a task is compiled in.
        let task_cfgs: Vec<_> = self
            .handlers(Kind::Rescheduling)
            .map(|(_, h)| h.cfg.predicate())
            .collect();
        let timetable = if task_cfgs.is_empty() {
            quote!(
                type Timetable = __tt::__private::NoTasks;
            )
        } else if task_cfgs.iter().any(Option::is_none) {
            quote!(
                type Timetable = __tt::__private::InTask;
            )
        } else {
            let any = task_cfgs.iter().flatten();
            let not_any = any.clone();
            quote! {
                #[cfg(any(#(#any),*))]
                type Timetable = __tt::__private::InTask;
                #[cfg(not(any(#(#not_any),*)))]
                type Timetable = __tt::__private::NoTasks;
            }
        };

        let enter = self.hook(&self.model.enter);
        let exit = self.hook(&self.model.exit);

        let (msg, reply, from, item, event, task, answer, down) = (
            local("__msg"),
            local("__reply"),
            local("__from"),
            local("__item"),
            local("__event"),
            local("__task"),
            local("__answer"),
            local("__down"),
        );
        let ctx = local("__ctx");
        let down_arms = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let cfg = h.cfg.attr();
            if !h.callable {
                return quote!(#cfg __Down::#v(..) => ::core::result::Result::Ok(()),);
            }
            let call = self.call_handler(h, quote!(#msg));
            if h.answers() {
                quote! {
                    #cfg
                    __Down::#v(#msg, #reply) => {
                        let #answer = #call?;
                        if let ::core::option::Option::Some(#reply) = #reply {
                            #reply.send(#answer);
                        }
                        ::core::result::Result::Ok(())
                    }
                }
            } else {
                quote!(#cfg __Down::#v(#msg) => #call,)
            }
        });
        let down_phantom = self.phantom_arm(quote!(__Down));
        let up_arms = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let cfg = h.cfg.attr();
            if !h.callable {
                return quote!(#cfg __Event::#v(..) => ::core::result::Result::Ok(()),);
            }
            let call = if boxes_up_message(h) {
                self.call_handler(h, quote!(#from, *#msg))
            } else {
                self.call_handler(h, quote!(#from, #msg))
            };
            quote!(#cfg __Event::#v(#from, #msg) => #call,)
        });
        let stream_arms = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let cfg = h.cfg.attr();
            if !h.callable {
                return quote!(#cfg __Event::#v(..) => ::core::result::Result::Ok(()),);
            }
            let call = self.call_handler(h, quote!(#item));
            quote!(#cfg __Event::#v(#item) => #call,)
        });
        let pass_arm = self.passes_up().then(
            || quote!(__Event::__Pass(_, #msg) => __tt::__private::pass_up(#ctx, *#msg).await,),
        );
        let event_phantom = self.phantom_arm(quote!(__Event));
        let task_arms = self.handlers(Kind::Rescheduling).map(|(i, h)| {
            let index = format_ident!("__TASK_{}", i);
            let cfg = h.cfg.attr();
            if !h.callable {
                return quote! {
                    #cfg #index => ::core::result::Result::Ok(__tt::__private::Reschedule::Done),
                };
            }
            let call = self.call_handler(h, quote!());
            quote!(#cfg #index => #call,)
        });
        // A thread's only task (no `#[cfg]` on it) runs as the method's own future;
        // several are dispatched by index.
        let mut rescheduling = self.handlers(Kind::Rescheduling);
        let task_body = match (rescheduling.next(), rescheduling.next()) {
            (Some((_, h)), None) if h.callable && h.cfg.predicate().is_none() => self.task_run(h),
            _ => quote! {
                async move {
                    match #task {
                        #(#task_arms)*
                        _ => ::core::unreachable!("no rescheduling task with index {}", #task),
                    }
                }
            },
        };
        let exited = self.exited();
        let restarted = self.restarted();
        let down_index = self.down_index();
        let future = |output: TokenStream| {
            quote! {
                impl __tt::__private::Future<Output = __tt::__private::Result<#output>> + ::core::marker::Send + '__tt
            }
        };
        let unit_future = future(quote!(()));
        let ctx_ty = quote!(__tt::__private::Ctx<Self>);
        // The bound the trait's methods declare: with it, the futures that hold `self` are
        // `Send` even for a thread type that is not, which is reported once, at the impl.
        let send_bound = quote!(where for<'__s> Self: ::core::marker::Send);
        let predicates = where_clause
            .map(|w| w.predicates.iter().map(ToTokens::to_token_stream).collect())
            .unwrap_or_else(Vec::new)
            .into_iter()
            .chain(self.message_assumptions());
        let task_future = future(quote!(__tt::__private::Reschedule));

        quote! {
            #[automatically_derived]
            impl #impl_generics __tt::__private::Thread for #self_ty where #(#predicates,)* {
                type Down = __Down #ty_generics;
                type Up = #up_ty;
                type Event = __Event #ty_generics;
                #timetable
                const TYPE_NAME: &'static ::core::primitive::str = #type_name;
                const DEFAULT_NAME: &'static ::core::primitive::str = #default_name;
                const DOWN_TYPES: &'static [&'static ::core::primitive::str] = &[#(#down_types),*];
                const UP_TYPE: ::core::option::Option<&'static ::core::primitive::str> = #up_type;
                #capacity
                const TASKS: &'static [__tt::__private::TaskSpec] = &[#(#tasks),*];

                #[allow(unreachable_code)]
                fn __enter<'__tt>(&'__tt mut self, #ctx: &'__tt mut #ctx_ty) -> #unit_future #send_bound {
                    #enter
                }

                #[allow(unreachable_code)]
                fn __exit<'__tt>(&'__tt mut self, #ctx: &'__tt mut #ctx_ty) -> #unit_future #send_bound {
                    #exit
                }

                #[allow(unreachable_code, unused_variables)]
                fn __down<'__tt>(&'__tt mut self, #ctx: &'__tt mut #ctx_ty, #down: Self::Down) -> #unit_future #send_bound {
                    async move {
                        match #down {
                            #(#down_arms)*
                            #down_phantom
                        }
                    }
                }

                #[allow(unreachable_code, unused_variables)]
                fn __event<'__tt>(&'__tt mut self, #ctx: &'__tt mut #ctx_ty, #event: Self::Event) -> #unit_future #send_bound {
                    async move {
                        match #event {
                            #(#up_arms)*
                            #pass_arm
                            #(#stream_arms)*
                            #event_phantom
                        }
                    }
                }

                #exited

                #restarted

                #down_index

                #[allow(unreachable_code, unused_variables)]
                fn __task<'__tt>(&'__tt mut self, #ctx: &'__tt mut #ctx_ty, #task: ::core::primitive::usize) -> #task_future #send_bound {
                    #task_body
                }
            }
        }
    }

    /// The `__exited` override: a child's exit goes to the `#[up]` handler that takes the
    /// framework's `ChildExit` (under any name), found by type: `<M>::__from_exit` is the
    /// inherent function of `ChildExit` and the blanket `NotChildExit` one for every other
    /// type. Without such a handler the exit is logged.
    fn exited(&self) -> Option<TokenStream> {
        self.child_report(&ChildReport {
            hook: "__exited",
            ty: "ChildExit",
            from_fn: "__from_exit",
            not_trait: "NotChildExit",
            log: "log_exit",
            value: "__exit",
        })
    }

    /// The `__restarted` override: a supervised child's restart goes to the `#[up]` handler
    /// that takes the framework's `ChildRestart` (under any name), found by type as in
    /// [`Self::exited`] (`<M>::__from_restart`, with `NotChildRestart` for every other type).
    /// Without such a handler the restart is logged.
    fn restarted(&self) -> Option<TokenStream> {
        self.child_report(&ChildReport {
            hook: "__restarted",
            ty: "ChildRestart",
            from_fn: "__from_restart",
            not_trait: "NotChildRestart",
            log: "log_restart",
            value: "__restart",
        })
    }

    /// The override of one of the framework's child reports (see [`ChildReport`]): each
    /// `#[up]` handler whose message may be the report's type is tried by type, in order;
    /// without one the report is logged.
    ///
    /// The handler is found before any future is made, and the hook's future is the
    /// handler's own (its output converted), not an `async` block around it: a block would
    /// keep the report beside the handler's copy of it, and the hook's future is part of
    /// every task of the thread's type. Handlers under `#[cfg]`, or in error, are tried in
    /// an `async` block instead, whose type does not depend on which of them are compiled.
    fn child_report(&self, report: &ChildReport) -> Option<TokenStream> {
        let candidates: Vec<_> = self
            .handlers(Kind::Up)
            .filter(|(_, h)| h.msg.as_ref().is_some_and(may_be_child_report))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let (ctx, from, value, msg, tried) = (
            local("__ctx"),
            local("__from"),
            local(report.value),
            local("__msg"),
            local("__tried"),
        );
        let hook = format_ident!("{}", report.hook);
        let report_ty = format_ident!("{}", report.ty);
        let from_fn = format_ident!("{}", report.from_fn);
        let not_trait = format_ident!("{}", report.not_trait);
        let log = format_ident!("{}", report.log);
        let direct = candidates
            .iter()
            .all(|(_, h)| h.callable && h.cfg.predicate().is_none());
        let body = if direct {
            // Candidate `i` is `Left` under `i` `Right`s; no handler, `Right` under all.
            let nest = |i: usize, inner: TokenStream| {
                (0..i).fold(
                    inner,
                    |inner, _| quote!(__tt::__private::Either::right(#inner)),
                )
            };
            let tries = candidates.iter().enumerate().map(|(i, (_, h))| {
                let ty = self.msg(h);
                let method = &h.ident;
                let arg_ctx = local_at("__ctx", h.ctx_span);
                let out = local("__out");
                let convert = convert_output(&h.returns, OutputTrait::Unit, &out);
                let call = quote_spanned!(h.span=> Self::#method(self, #arg_ctx, #from, #msg));
                let handled = nest(
                    i,
                    quote! {
                        __tt::__private::Either::left(__tt::__private::handled(
                            #call,
                            move |#out| #convert,
                        ))
                    },
                );
                quote! {
                    let #value = match <#ty>::#from_fn(#value) {
                        ::core::result::Result::Ok(#msg) => return #handled,
                        ::core::result::Result::Err(#value) => #value,
                    };
                }
            });
            let done = nest(
                candidates.len(),
                quote!(::core::future::ready(::core::result::Result::Ok(()))),
            );
            quote! {
                #[allow(unused_imports)]
                use __tt::__private::#not_trait as _;
                #(#tries)*
                __tt::__private::#log(#ctx, &#value);
                #done
            }
        } else {
            let tries = candidates.iter().map(|(_, h)| {
                let ty = self.msg(h);
                let cfg = h.cfg.attr();
                let found = if h.callable {
                    let call = self.call_handler(h, quote!(#from, #msg));
                    quote!(return #call)
                } else {
                    quote!(return ::core::result::Result::Ok(()))
                };
                // The result is matched without binding and then moved out whole: a binding
                // would move out of it in part, and keep all of it in the hook's future
                // while the handler runs (the report a second time, beside the handler's
                // own copy).
                quote! {
                    #cfg
                    let #value = {
                        let #tried = <#ty>::#from_fn(#value);
                        match #tried {
                            ::core::result::Result::Ok(_) => {
                                let #msg = ::core::option::Option::unwrap(
                                    ::core::result::Result::ok(#tried),
                                );
                                #found
                            }
                            ::core::result::Result::Err(_) => ::core::option::Option::unwrap(
                                ::core::result::Result::err(#tried),
                            ),
                        }
                    };
                }
            });
            quote! {
                async move {
                    #[allow(unused_imports)]
                    use __tt::__private::#not_trait as _;
                    #(#tries)*
                    __tt::__private::#log(#ctx, &#value);
                    ::core::result::Result::Ok(())
                }
            }
        };
        Some(quote! {
            #[allow(unreachable_code, unused_variables)]
            fn #hook<'__tt>(
                &'__tt mut self,
                #ctx: &'__tt mut __tt::__private::Ctx<Self>,
                #from: __tt::__private::ChildId,
                #value: __tt::__private::#report_ty,
            ) -> impl __tt::__private::Future<Output = __tt::__private::Result<()>> + ::core::marker::Send + '__tt
            where
                for<'__s> Self: ::core::marker::Send,
            {
                #body
            }
        })
    }

    /// `__down_index`: the index of a message's type in `DOWN_TYPES`, which holds only the
    /// handlers compiled in (`#[cfg]` may leave some out), counted as the task indices are.
    fn down_index(&self) -> TokenStream {
        let down = local("__down");
        let mut counted = Vec::new();
        let mut arms = Vec::new();
        for (i, h) in self.handlers(Kind::Down) {
            let v = format_ident!("V{}", i);
            let cfg = h.cfg.attr();
            arms.push(quote!(#cfg __Down::#v(..) => 0 #(+ #counted)*,));
            counted.push(match h.cfg.predicate() {
                Some(predicate) => quote!((if ::core::cfg!(#predicate) { 1 } else { 0 })),
                None => quote!(1),
            });
        }
        let phantom = self.phantom_arm(quote!(__Down));
        quote! {
            fn __down_index(#down: &Self::Down) -> ::core::primitive::usize where for<'__s> Self: ::core::marker::Send {
                match *#down {
                    #(#arms)*
                    #phantom
                }
            }
        }
    }

    /// The up type: the declared one, or `NoUp`.
    fn up_ty(&self) -> TokenStream {
        match &self.args.up {
            Some(ty) => replace_self(ty, &self.item.self_ty),
            None => quote!(__tt::__private::NoUp),
        }
    }

    /// The where clause of the routing impls (`Accepts`, `Asks`, `HandlesUp`,
    /// `HandlesStream`): the impl's own, and `for<'__s> Self: Thread` (with its associated
    /// types, which a bound hides otherwise in a generic impl). Always true (the
    /// `Thread` impl has no conditions), so the impls apply wherever they did; but a
    /// `Thread` bound with a binder is assumed rather than checked again from the
    /// supertraits, so that a thread type that is not `Send` is reported once, at its
    /// `Thread` impl, and not again at every routing impl.
    fn routing_where_clause(&self) -> TokenStream {
        let (_, ty_generics, _) = self.item.generics.split_for_impl();
        let up_ty = self.up_ty();
        let predicates = self
            .item
            .generics
            .where_clause
            .as_ref()
            .map(|w| &w.predicates)
            .into_iter()
            .flatten();
        quote! {
            where
                #(#predicates,)*
                for<'__s> Self: __tt::__private::Thread<
                    Down = __Down #ty_generics,
                    Up = #up_ty,
                    Event = __Event #ty_generics,
                >,
        }
    }

    /// With `remote`: the `Remote` impl, which shows each DOWN message type (with its index
    /// in `DOWN_TYPES`, counted as `__down_index` counts) and the up type to a visitor.
    /// Each type is named once, in a call whose bound checks that it is a `WireMessage`:
    /// a type that is not is reported once, on the type as the user wrote it.
    fn remote_impl(&self) -> TokenStream {
        let Some(remote_span) = self.args.remote else {
            return TokenStream::new();
        };
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, where_clause) = self.item.generics.split_for_impl();
        let (visitor, down, msg, reply) = (
            local("__visitor"),
            local("__down"),
            local("__msg"),
            local("__reply"),
        );
        let mut counted: Vec<TokenStream> = Vec::new();
        let mut visits = Vec::new();
        for (i, h) in self.handlers(Kind::Down) {
            let v = format_ident!("V{}", i);
            let ty = self.msg(h);
            let span = h.msg.as_ref().map_or_else(Span::call_site, Spanned::span);
            let cfg = h.cfg.attr();
            let at = quote!((0 #(+ #counted)*));
            visits.push(if h.answers() {
                let answer = self.reply(h);
                let answer_span = match &h.output {
                    Output::Value(ty) => ty.span(),
                    _ => h.returns.ty.span(),
                };
                let call =
                    quote_spanned!(answer_span=> __tt::proxy::MessageVisitor::ask::<#ty, #answer>);
                quote_spanned! {span=>
                    #cfg
                    #call(
                        #visitor,
                        #at,
                        |#msg, #reply| __Down::#v(#msg, ::core::option::Option::Some(#reply)),
                        |#down| match #down {
                            __Down::#v(#msg, #reply) => ::core::result::Result::Ok((#msg, #reply)),
                            #[allow(unreachable_patterns)]
                            #down => ::core::result::Result::Err(#down),
                        },
                    );
                }
            } else {
                quote_spanned! {span=>
                    #cfg
                    __tt::proxy::MessageVisitor::tell::<#ty>(
                        #visitor,
                        #at,
                        __Down::#v,
                        |#down| match #down {
                            __Down::#v(#msg) => ::core::result::Result::Ok(#msg),
                            #[allow(unreachable_patterns)]
                            #down => ::core::result::Result::Err(#down),
                        },
                    );
                }
            });
            counted.push(match h.cfg.predicate() {
                Some(predicate) => quote!((if ::core::cfg!(#predicate) { 1 } else { 0 })),
                None => quote!(1),
            });
        }
        let up = match &self.args.up {
            Some(up) => {
                let ty = replace_self(up, self_ty);
                quote_spanned!(up.span()=> __tt::proxy::MessageVisitor::up::<#ty>)
            }
            None => {
                quote_spanned!(remote_span=> __tt::proxy::MessageVisitor::up::<__tt::__private::NoUp>)
            }
        };
        let declared = self.args.capacity.as_ref().map(|lit| {
            quote! {
                const DECLARED_CAPACITY: ::core::option::Option<::core::primitive::usize> =
                    ::core::option::Option::Some(#lit);
            }
        });
        let (into, from) = (local("__into"), local("__from"));
        quote_spanned! {remote_span=>
            #[automatically_derived]
            impl #impl_generics __tt::proxy::Remote for #self_ty #where_clause {
                #declared
                #[allow(clippy::identity_op)]
                fn visit_messages<__V: __tt::proxy::MessageVisitor<Self>>(#visitor: &mut __V) {
                    #(#visits)*
                    #up(#visitor, |#into| #into, |#from| #from);
                }
            }
        }
    }

    fn accepts_impls(&self) -> TokenStream {
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, _) = self.item.generics.split_for_impl();
        let where_clause = self.routing_where_clause();
        let (msg, reply, down) = (local("__msg"), local("__reply"), local("__down"));
        let impls = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let ty = self.msg(h);
            let span = h.msg.as_ref().map_or_else(Span::call_site, Spanned::span);
            let cfg = h.cfg.attr();
            let (wrap, asks) = if h.answers() {
                let answer = self.reply(h);
                (
                    quote!(__Down::#v(#msg, ::core::option::Option::None)),
                    quote_spanned! {span=>
                        #cfg
                        #[automatically_derived]
                        impl #impl_generics __tt::__private::Asks<#ty> for #self_ty #where_clause {
                            type Reply = #answer;
                            fn __wrap_ask(#msg: #ty, #reply: __tt::__private::Reply<#answer>) -> Self::Down {
                                __Down::#v(#msg, ::core::option::Option::Some(#reply))
                            }
                        }
                    },
                )
            } else {
                (quote!(__Down::#v(#msg)), quote!())
            };
            quote_spanned! {span=>
                #cfg
                #[automatically_derived]
                impl #impl_generics __tt::__private::Accepts<#ty> for #self_ty #where_clause {
                    fn __wrap(#msg: #ty) -> Self::Down {
                        #wrap
                    }
                    #[allow(unreachable_patterns, clippy::unused_unit)]
                    fn __unwrap(#down: Self::Down) -> #ty {
                        match #down {
                            __Down::#v(#msg, ..) => #msg,
                            _ => ::core::unreachable!("a message of another type"),
                        }
                    }
                }
                #asks
            }
        });
        quote!(#(#impls)*)
    }

    /// For every `#[down]` type `M`, the runtime's impls of `Accepts<&M>` and `Asks<&M>`,
    /// which never apply: `send(&msg)` then reports that messages go by value, instead of
    /// asking for a handler of `&M`, which the macro forbids. Not where the type could be
    /// any type (a type parameter), as they could overlap with its impl.
    fn by_reference_impls(&self) -> TokenStream {
        let (impl_generics, ty_generics, where_clause) = self.item.generics.split_for_impl();
        if !self.all_known(Kind::Down) {
            return TokenStream::new();
        }
        let impls = self.handlers(Kind::Down).map(|(_, h)| {
            let ty = self.msg(h);
            let cfg = h.cfg.attr();
            quote! {
                #cfg
                #[automatically_derived]
                #[doc(hidden)]
                impl #impl_generics __tt::__private::DownType<#ty> for __Event #ty_generics #where_clause {}
            }
        });
        quote! {
            #[automatically_derived]
            #[doc(hidden)]
            impl #impl_generics __tt::__private::KnownDownTypes for __Event #ty_generics #where_clause {}
            #(#impls)*
        }
    }

    /// Whether the thread passes its children's messages of its up type on (`pass_up`,
    /// with an up type declared; without one, the option is reported).
    fn passes_up(&self) -> bool {
        self.args.pass_up.is_some() && self.args.up.is_some()
    }

    /// For a `pass_up` thread: its children's messages of its up type are routed straight
    /// to its own way UP.
    fn pass_impl(&self) -> Option<TokenStream> {
        if !self.passes_up() {
            return None;
        }
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, _) = self.item.generics.split_for_impl();
        let where_clause = self.routing_where_clause();
        let (from, msg, ctx) = (local("__from"), local("__msg"), local("__ctx"));
        let up_ty = self.up_ty();
        Some(quote! {
            #[automatically_derived]
            impl #impl_generics __tt::__private::HandlesUp<#up_ty> for #self_ty #where_clause {
                fn __wrap_up(#from: __tt::__private::ChildId, #msg: #up_ty) -> Self::Event {
                    __Event::__Pass(#from, ::std::boxed::Box::new(#msg))
                }

                #[inline]
                fn __route(
                    #ctx: &mut __tt::__private::Ctx<Self>,
                ) -> __tt::__private::Option<__tt::__private::UpRoute<#up_ty>> {
                    __tt::__private::Option::Some(__tt::__private::pass_route(#ctx))
                }
            }
        })
    }

    fn up_impls(&self) -> TokenStream {
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, _) = self.item.generics.split_for_impl();
        let where_clause = self.routing_where_clause();
        let (from, msg, item) = (local("__from"), local("__msg"), local("__item"));
        let pass = self.pass_impl();
        let ups = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let ty = self.msg(h);
            let span = h.msg.as_ref().map_or_else(Span::call_site, Spanned::span);
            let cfg = h.cfg.attr();
            let stored = if boxes_up_message(h) {
                quote!(::std::boxed::Box::new(#msg))
            } else {
                quote!(#msg)
            };
            quote_spanned! {span=>
                #cfg
                #[automatically_derived]
                impl #impl_generics __tt::__private::HandlesUp<#ty> for #self_ty #where_clause {
                    fn __wrap_up(#from: __tt::__private::ChildId, #msg: #ty) -> Self::Event {
                        __Event::#v(#from, #stored)
                    }
                }
            }
        });
        let streams = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let ty = self.msg(h);
            let span = h.msg.as_ref().map_or_else(Span::call_site, Spanned::span);
            let cfg = h.cfg.attr();
            quote_spanned! {span=>
                #cfg
                #[automatically_derived]
                impl #impl_generics __tt::__private::HandlesStream<#ty> for #self_ty #where_clause {
                    fn __wrap_item(#item: #ty) -> Self::Event {
                        __Event::#v(#item)
                    }
                }
            }
        });
        quote!(#(#ups)* #pass #(#streams)*)
    }

    /// The message types checked to be `Send + 'static` (see [`Self::message_checks`]),
    /// with a number each: the up type and every handler's type, but those under a
    /// `#[cfg]` (the type may not exist without it) or naming a type parameter (an impl for
    /// it would break the orphan rule).
    fn checked_messages(&self) -> Vec<(usize, &'a Type)> {
        let handlers = self
            .model
            .handlers
            .iter()
            .filter_map(|h| h.msg.as_ref().filter(|_| h.cfg.predicate().is_none()));
        self.args
            .up
            .iter()
            .chain(handlers)
            .filter(|ty| !self.mentions_params(ty))
            .enumerate()
            .collect()
    }

    /// For every checked message type `M`, `impl Message<__Event, N> for M`, whose
    /// supertraits are `Send + 'static`; the `Thread` impl assumes each (with a binder,
    /// which the compiler takes as an assumption rather than checking it again). A message
    /// type that is not `Send` is then reported once, on the type in the handler's
    /// signature, and the `Thread` impl, whose enums and futures hold the message, adds no
    /// error of its own, nor does any use of the thread. Numbered, so that one type taken
    /// by two handlers (or by two names) gets two impls that do not overlap.
    fn message_checks(&self) -> TokenStream {
        let (impl_generics, ty_generics, where_clause) = self.item.generics.split_for_impl();
        let impls = self.checked_messages().into_iter().map(|(n, ty)| {
            let span = ty.span();
            let ty = replace_self(ty, &self.item.self_ty);
            quote_spanned! {span=>
                #[automatically_derived]
                #[doc(hidden)]
                impl #impl_generics __tt::__private::Message<__Event #ty_generics, #n> for #ty #where_clause {}
            }
        });
        quote!(#(#impls)*)
    }

    /// The assumptions of the `Thread` impl: every checked message type is a `Message`.
    fn message_assumptions(&self) -> Vec<TokenStream> {
        let (_, ty_generics, _) = self.item.generics.split_for_impl();
        self.checked_messages()
            .into_iter()
            .map(|(n, ty)| {
                let ty = replace_self(ty, &self.item.self_ty);
                quote!(for<'__s> #ty: __tt::__private::Message<__Event #ty_generics, #n>)
            })
            .collect()
    }

    /// The placeholder impls of `Accepts`, `Asks`, `HandlesUp` and `HandlesStream` (see
    /// the runtime's `PlaceholderDown`), switched on through the event type. Not where a
    /// handler's type could be the placeholder (a bare type parameter), as the impls would
    /// overlap.
    fn placeholder_impls(&self) -> TokenStream {
        let (impl_generics, ty_generics, where_clause) = self.item.generics.split_for_impl();
        let markers = [
            (Kind::Down, quote!(PlaceholderDown)),
            (Kind::Up, quote!(PlaceholderUp)),
            (Kind::Stream, quote!(PlaceholderStream)),
        ]
        .into_iter()
        .filter(|(kind, _)| self.all_known(*kind))
        .map(|(_, marker)| {
            quote! {
                #[automatically_derived]
                #[doc(hidden)]
                impl #impl_generics __tt::__private::#marker for __Event #ty_generics #where_clause {}
            }
        });
        quote!(#(#markers)*)
    }

    /// Whether no handler of a kind has a type that could be any type.
    fn all_known(&self, kind: Kind) -> bool {
        self.handlers(kind)
            .all(|(_, h)| !h.msg.as_ref().is_some_and(|ty| self.may_be_anything(ty)))
    }

    /// Whether a handler's type could be any type (see [`crate::valid::may_be_anything`]).
    fn may_be_anything(&self, ty: &Type) -> bool {
        crate::valid::may_be_anything(self.item, ty)
    }

    /// The index of every task among the tasks compiled in (`#[cfg]` may leave some out),
    /// and the task name constants.
    fn task_consts(&self) -> TokenStream {
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, where_clause) = self.item.generics.split_for_impl();
        let tasks: Vec<_> = self.handlers(Kind::Rescheduling).collect();
        if tasks.is_empty() {
            return TokenStream::new();
        }
        let mut counted = Vec::new();
        let mut indices = Vec::new();
        for (i, h) in &tasks {
            let index = format_ident!("__TASK_{}", i);
            indices.push(quote! {
                #[allow(dead_code)]
                const #index: ::core::primitive::usize = 0 #(+ #counted)*;
            });
            counted.push(match h.cfg.predicate() {
                Some(predicate) => quote!((if ::core::cfg!(#predicate) { 1 } else { 0 })),
                None => quote!(1),
            });
        }
        let consts = tasks
            .iter()
            .zip(&self.task_consts)
            .filter_map(|((i, h), name)| {
                let name = name.as_ref()?;
                let index = format_ident!("__TASK_{}", i);
                let cfg = h.cfg.attr();
                let doc = format!(
                    "The `{}` rescheduling task, for `ctx.start_task`, `ctx.reschedule_task` and `ctx.cancel_task`.",
                    h.ident.unraw()
                );
                Some(quote! {
                    #cfg
                    #[doc = #doc]
                    #[allow(dead_code, unreachable_pub)]
                    pub const #name: __tt::__private::TaskRef<Self> = __tt::__private::TaskRef::__new(#index);
                })
            });
        quote! {
            #(#indices)*
            #[automatically_derived]
            impl #impl_generics #self_ty #where_clause {
                #(#consts)*
            }
        }
    }

    /// A `#[down]` handler of the framework's `ChildExit` or `ChildRestart` (under any
    /// name) is a mistake: they arrive UP. Found by type, at compile time, as in
    /// [`Self::exited`].
    fn child_report_checks(&self) -> TokenStream {
        let checks = self
            .handlers(Kind::Down)
            .filter_map(|(_, h)| {
                let ty = h.msg.as_ref()?;
                if !may_be_child_report(ty) || self.mentions_params(ty) {
                    return None;
                }
                let span = ty.span();
                let cfg = h.cfg.attr();
                Some(quote_spanned! {span=>
                    #cfg
                    const _: () = {
                        #[allow(unused_imports)]
                        use __tt::__private::NotChildExit as _;
                        #[allow(unused_imports)]
                        use __tt::__private::NotChildRestart as _;
                        if <#ty>::__IS_CHILD_EXIT {
                            ::core::panic!(
                                "`ChildExit` arrives UP from children: handle it with `#[up] async fn exited(&mut self, ctx: &mut Ctx<Self>, from: ChildId, exit: ChildExit)`"
                            );
                        }
                        if <#ty>::__IS_CHILD_RESTART {
                            ::core::panic!(
                                "`ChildRestart` arrives UP from supervised children: handle it with `#[up] async fn restarted(&mut self, ctx: &mut Ctx<Self>, from: ChildId, restart: ChildRestart)`"
                            );
                        }
                    };
                })
            });
        quote!(#(#checks)*)
    }

    /// Whether a type names `Self` or a type parameter of the impl.
    fn mentions_params(&self, ty: &Type) -> bool {
        fn walk(tokens: TokenStream, names: &[String]) -> bool {
            tokens.into_iter().any(|t| match t {
                TokenTree::Ident(i) => i == "Self" || names.contains(&i.to_string()),
                TokenTree::Group(g) => walk(g.stream(), names),
                _ => false,
            })
        }
        let names: Vec<String> = self
            .item
            .generics
            .params
            .iter()
            .filter_map(|p| match p {
                GenericParam::Type(t) => Some(t.ident.to_string()),
                _ => None,
            })
            .collect();
        walk(ty.to_token_stream(), &names)
    }
}

/// Which trait converts the output of a method, and so which outputs it may have.
#[derive(Clone, Copy)]
enum OutputTrait {
    /// Nothing or `Result<()>`.
    Unit,
    /// `Result<Answer>`.
    Answer,
    /// `Reschedule` or `Result<Reschedule>`.
    Task,
}

/// Converts the output of a method into the framework's `Result`, through the trait of its
/// kind, and its error through `HandlerError`. The trait paths are spanned on the return
/// type, so that an output or an error type that does not fit is reported there, once.
fn convert_output(returns: &Returns, output: OutputTrait, out: &Ident) -> TokenStream {
    let span = returns.span;
    let ret = &returns.ty;
    let output = match output {
        OutputTrait::Unit => quote_spanned!(span=> __tt::__private::UnitOutput),
        OutputTrait::Answer => quote_spanned!(span=> __tt::__private::AnswerOutput),
        OutputTrait::Task => quote_spanned!(span=> __tt::__private::TaskOutput),
    };
    let error = quote_spanned!(span=> __tt::__private::HandlerError);
    let (ok, err) = (local("__ok"), local("__err"));
    // From the return type's first token to its last, so that the error underlines all of
    // it (a span cannot be joined on stable).
    let (open, close) = (quote_spanned!(span=> <), quote_spanned!(returns.last=> >));
    // The error's conversion is reported on the error type, if it is written; otherwise on
    // the whole return type, where a wrong output is reported too, so that it is reported
    // once.
    let (first, last) = returns.error.unwrap_or((span, returns.last));
    let (open_error, err_type) = (quote_spanned!(first=> <), quote_spanned!(last=> Err));
    let arguments = quote_spanned!(returns.last=> (#out));
    quote_spanned! {span=>
        match #open #ret as #output #close::into_parts #arguments {
            ::core::result::Result::Ok(#ok) => ::core::result::Result::Ok(#ok),
            ::core::result::Result::Err(#err) => ::core::result::Result::Err(
                <#open_error #ret as #output #close::#err_type as #error>::into_error(#err),
            ),
        }
    }
}

/// Whether an `#[up]` handler's message is kept boxed in the event enum: one named
/// `ChildExit` or `ChildRestart`. Those reach their handler through the child-report hooks,
/// not as UP messages (a child would have to declare one as its `up` type), and they are
/// large: inline, they would size every slot of the parent's inbound queue (which
/// allocates 32 slots at once) for nothing.
fn boxes_up_message(h: &Handler) -> bool {
    let Some(Type::Path(p)) = h.msg.as_ref() else {
        return false;
    };
    p.qself.is_none()
        && p.path.segments.last().is_some_and(|last| {
            last.arguments.is_none() && (last.ident == "ChildExit" || last.ident == "ChildRestart")
        })
}

/// Whether a type may be the framework's `ChildExit` or `ChildRestart` under some name: a
/// plain path (an alias may rename it), not a tuple, reference or the like.
fn may_be_child_report(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.qself.is_none() && !ast::is_plain(ty),
        Type::Paren(t) => may_be_child_report(&t.elem),
        Type::Group(t) => may_be_child_report(&t.elem),
        _ => false,
    }
}

/// A type from the user's impl, for an item where `Self` means something else (an enum of
/// its own, an impl for another type): `Self` becomes the thread type.
fn replace_self(ty: &Type, self_ty: &Type) -> TokenStream {
    fn walk(tokens: TokenStream, self_ty: &Type) -> TokenStream {
        tokens
            .into_iter()
            .map(|token| match token {
                TokenTree::Ident(i) if i == "Self" => {
                    let group = proc_macro2::Group::new(
                        proc_macro2::Delimiter::None,
                        self_ty.to_token_stream(),
                    );
                    TokenTree::Group(group)
                }
                TokenTree::Group(g) => {
                    let mut group =
                        proc_macro2::Group::new(g.delimiter(), walk(g.stream(), self_ty));
                    group.set_span(g.span());
                    TokenTree::Group(group)
                }
                other => other,
            })
            .collect()
    }
    walk(ty.to_token_stream(), self_ty)
}

fn duration(d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(__tt::__private::Duration::new(#secs, #nanos))
}

fn task_spec(h: &Handler) -> TokenStream {
    let name = h.ident.unraw().to_string();
    let every = match h.task.every {
        Some(d) => {
            let d = duration(d);
            quote!(::core::option::Option::Some(#d))
        }
        None => quote!(::core::option::Option::None),
    };
    let delay = duration(h.task.delay.unwrap_or_default());
    let manual = h.task.manual;
    let missed = match h.task.missed.map(|(m, _)| m).unwrap_or_default() {
        Missed::Skip => quote!(Skip),
        Missed::Burst => quote!(Burst),
        Missed::Delay => quote!(Delay),
    };
    quote! {
        __tt::__private::TaskSpec {
            name: #name,
            every: #every,
            delay: #delay,
            manual: #manual,
            missed: __tt::__private::MissedTicks::#missed,
        }
    }
}

/// The name of a task's constant: the method's name, without `r#`, in upper case (`tick`
/// -> `TICK`, `r#loop` -> `LOOP`); `None` if that is no identifier.
pub(crate) fn task_const_name(method: &Ident) -> Option<Ident> {
    let upper = method.unraw().to_string().to_uppercase();
    let mut name: Ident = syn::parse_str(&upper).ok()?;
    name.set_span(method.span());
    Some(name)
}

/// `TcpServer` -> `tcp_server`, `HTTPServer` -> `http_server`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// One of the framework's reports a parent receives about a child (its exit, a restart),
/// by the names its routing uses.
struct ChildReport {
    /// The `Thread` hook that receives it.
    hook: &'static str,
    /// The framework's type.
    ty: &'static str,
    /// Its inherent `__from_…` function, which tells it from other types.
    from_fn: &'static str,
    /// The blanket trait that gives every other type a `__from_…` that refuses.
    not_trait: &'static str,
    /// The `__private` function that logs it when no handler takes it.
    log: &'static str,
    /// The name of the hook's argument.
    value: &'static str,
}

#[cfg(test)]
mod tests {
    use proc_macro2::Ident;
    use proptest::prelude::*;
    use syn::ext::IdentExt;

    use super::{snake_case, task_const_name};

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("TcpServer"), "tcp_server");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Master"), "master");
        assert_eq!(snake_case("DataProcessor2"), "data_processor2");
        assert_eq!(snake_case("WebsocketSub"), "websocket_sub");
    }

    #[test]
    fn task_constants_of_raw_identifiers() {
        let name = |s: &str| task_const_name(&syn::parse_str(s).unwrap()).map(|i| i.to_string());
        assert_eq!(name("tick").as_deref(), Some("TICK"));
        assert_eq!(name("r#loop").as_deref(), Some("LOOP"));
        assert_eq!(name("r#type").as_deref(), Some("TYPE"));
        assert_eq!(name("r#try").as_deref(), Some("TRY"));
        for keyword in [
            "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern",
            "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move",
            "mut", "pub", "ref", "return", "static", "struct", "trait", "true", "type", "unsafe",
            "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
            "override", "priv", "typeof", "unsized", "virtual", "yield",
        ] {
            assert!(name(&format!("r#{keyword}")).is_some(), "{keyword}");
        }
    }

    proptest! {
        /// Deriving names from any identifier, raw or not, ASCII or not, never panics, and
        /// a task constant, when there is one, is an identifier.
        #[test]
        fn names_from_any_identifier(text in "(r#)?[\\p{XID_Start}_][\\p{XID_Continue}]{0,10}") {
            let Ok(ident) = syn::parse_str::<Ident>(&text) else {
                return Ok(());
            };
            if let Some(name) = task_const_name(&ident) {
                prop_assert!(syn::parse_str::<Ident>(&name.to_string()).is_ok());
                prop_assert!(!name.to_string().starts_with("r#"));
            }
            let snake = snake_case(&ident.unraw().to_string());
            prop_assert!(!snake.is_empty());
            prop_assert!(!snake.contains('#'));
        }
    }
}
