//! Code generation: the message and event enums, the `Thread` impl with its dispatch, the
//! `Accepts` / `Asks` / `HandlesUp` / `HandlesStream` impls, and the task name constants.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, ItemImpl, Path, Type, WherePredicate, parse_quote};

use crate::ast::{self, Errors, Handler, Kind, Model, Output, type_string};
use crate::attr::{self, Missed};

pub(crate) fn taskthread(args: TokenStream, input: TokenStream) -> syn::Result<TokenStream> {
    let mut item: ItemImpl = syn::parse2(input)?;
    let mut errors = Errors::default();
    let args = attr::parse_thread_args(args, &mut errors);
    let can_generate = crate::valid::check_impl(&item, &mut errors);
    let mut model = ast::parse(&mut item, &mut errors);
    crate::valid::check_model(&item, &mut model, &mut errors);
    // On error, still emit the item (handler attributes stripped) and the code for every
    // handler that is right, next to the errors: IDEs keep working, and the user sees the
    // errors that matter rather than follow-on ones about a missing `Thread` impl.
    let generated = if can_generate {
        add_thread_bounds(&mut item);
        let krate: Path = args
            .krate
            .clone()
            .unwrap_or_else(|| parse_quote!(::taskthread));
        Generator::new(&item, &args, &model, krate).generate()
    } else {
        TokenStream::new()
    };
    let compile_errors = errors.finish().err().map(syn::Error::into_compile_error);
    Ok(quote!(#item #generated #compile_errors))
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

struct Generator<'a> {
    item: &'a ItemImpl,
    args: &'a attr::ThreadArgs,
    model: &'a Model,
    krate: Path,
    ident: Ident,
    down_enum: Ident,
    event_enum: Ident,
}

impl<'a> Generator<'a> {
    fn new(item: &'a ItemImpl, args: &'a attr::ThreadArgs, model: &'a Model, krate: Path) -> Self {
        let ident = match &*item.self_ty {
            Type::Path(p) => p.path.segments.last().map(|s| s.ident.clone()),
            _ => None,
        }
        .unwrap_or_else(|| Ident::new("Thread", Span::call_site()));
        let down_enum = format_ident!("__{}Down", ident);
        let event_enum = format_ident!("__{}Event", ident);
        Self {
            item,
            args,
            model,
            krate,
            ident,
            down_enum,
            event_enum,
        }
    }

    fn handlers(&self, kind: Kind) -> impl Iterator<Item = (usize, &'a Handler)> + '_ {
        self.model
            .handlers
            .iter()
            .filter(move |h| h.kind == kind)
            .filter(move |h| !(kind == Kind::Up && is_exit_handler(h)))
            .enumerate()
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

    /// The impl's generics; `add_thread_bounds` already added `T: Send + 'static`.
    fn thread_generics(&self) -> syn::Generics {
        self.item.generics.clone()
    }

    fn generate(&self) -> TokenStream {
        let enums = self.enums();
        let thread_impl = self.thread_impl();
        let accepts = self.accepts_impls();
        let up_impls = self.up_impls();
        let placeholders = self.placeholder_impls();
        let tasks = self.task_consts();
        let send_checks = self.send_checks();
        quote! {
            #send_checks
            #enums
            #thread_impl
            #accepts
            #up_impls
            #placeholders
            #tasks
        }
    }

    fn enums(&self) -> TokenStream {
        let krate = &self.krate;
        let params = self.phantom_params();
        let generics = self.thread_generics();
        let (_, _, where_clause) = generics.split_for_impl();
        let enum_params = &self.item.generics.params;
        let phantom = if params.is_empty() {
            quote!()
        } else {
            quote! {
                #[doc(hidden)]
                __Phantom(#krate::__private::PhantomData<fn() -> (#(#params,)*)>, #krate::__private::Infallible),
            }
        };
        let down_variants = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let ty = h.msg.as_ref().expect("down handlers have a message");
            match &h.output {
                Output::Value(reply) => quote! {
                    #v(#ty, #krate::__private::Option<#krate::__private::Reply<#reply>>),
                },
                _ => quote!(#v(#ty),),
            }
        });
        let up_variants = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let ty = h.msg.as_ref().expect("up handlers have a message");
            quote!(#v(#krate::__private::ChildId, #ty),)
        });
        let stream_variants = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let ty = h.msg.as_ref().expect("stream handlers have an item");
            quote!(#v(#ty),)
        });
        let down_enum = &self.down_enum;
        let event_enum = &self.event_enum;
        let attrs = quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, private_interfaces, unreachable_pub, dead_code, missing_docs, missing_debug_implementations, clippy::large_enum_variant)]
        };
        quote! {
            #attrs
            pub enum #down_enum<#enum_params> #where_clause {
                #(#down_variants)*
                #phantom
            }
            #attrs
            pub enum #event_enum<#enum_params> #where_clause {
                #(#up_variants)*
                #(#stream_variants)*
                #phantom
            }
        }
    }

    fn enum_ty(&self, ident: &Ident) -> TokenStream {
        let (_, ty_generics, _) = self.item.generics.split_for_impl();
        quote!(#ident #ty_generics)
    }

    fn phantom_arm(&self, enum_ty: &Ident) -> TokenStream {
        if self.phantom_params().is_empty() {
            quote!()
        } else {
            quote!(#enum_ty::__Phantom(_, never) => match never {},)
        }
    }

    fn call(&self, h: &Handler, args: TokenStream) -> TokenStream {
        let krate = &self.krate;
        let method = &h.ident;
        let ctx = quote_spanned!(h.ctx_span=> ctx);
        quote_spanned! {h.span=>
            #krate::__private::HandlerOutput::into_result(Self::#method(self, #ctx, #args).await)
        }
    }

    fn thread_impl(&self) -> TokenStream {
        let krate = &self.krate;
        let self_ty = &self.item.self_ty;
        let generics = self.thread_generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let down_ty = self.enum_ty(&self.down_enum);
        let event_ty = self.enum_ty(&self.event_enum);
        let down_enum = &self.down_enum;
        let event_enum = &self.event_enum;
        let up_ty = match &self.args.up {
            Some(ty) => quote!(#ty),
            None => quote!(#krate::__private::NoUp),
        };
        let type_name = self.ident.to_string();
        let default_name = match &self.args.name {
            Some(lit) => lit.value(),
            None => snake_case(&type_name),
        };
        let down_types = self
            .handlers(Kind::Down)
            .map(|(_, h)| type_string(h.msg.as_ref().expect("down handlers have a message")));
        let up_type = match &self.args.up {
            Some(ty) => {
                let s = type_string(ty);
                quote!(#krate::__private::Option::Some(#s))
            }
            None => quote!(#krate::__private::Option::None),
        };
        let capacity = self
            .args
            .capacity
            .as_ref()
            .map(|lit| quote!(const CAPACITY: usize = #lit;));
        let tasks = self
            .handlers(Kind::Rescheduling)
            .map(|(_, h)| task_spec(krate, h));

        let hook = |hook: &Option<ast::Hook>| match hook {
            Some(hook) => {
                let method = &hook.ident;
                let ctx = quote_spanned!(hook.ctx_span=> ctx);
                quote_spanned! {hook.span=>
                    async move { #krate::__private::HandlerOutput::into_result(Self::#method(self, #ctx).await) }
                }
            }
            None => quote!(async move {
                let _ = (self, ctx);
                Ok(())
            }),
        };
        let enter = hook(&self.model.enter);
        let exit = hook(&self.model.exit);

        let down_arms = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let call = self.call(h, quote!(msg));
            match &h.output {
                Output::Value(_) => quote! {
                    #down_enum::#v(msg, reply) => {
                        let answer = #call?;
                        if let #krate::__private::Option::Some(reply) = reply {
                            reply.send(answer);
                        }
                        Ok(())
                    }
                },
                _ => quote!(#down_enum::#v(msg) => #call,),
            }
        });
        let down_phantom = self.phantom_arm(down_enum);
        let up_arms = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let call = self.call(h, quote!(from, msg));
            quote!(#event_enum::#v(from, msg) => #call,)
        });
        let stream_arms = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let call = self.call(h, quote!(item));
            quote!(#event_enum::#v(item) => #call,)
        });
        let event_phantom = self.phantom_arm(event_enum);
        let task_arms = self.handlers(Kind::Rescheduling).map(|(i, h)| {
            let method = &h.ident;
            let ctx = quote_spanned!(h.ctx_span=> ctx);
            quote_spanned! {h.span=>
                #i => #krate::__private::HandlerOutput::into_result(Self::#method(self, #ctx).await),
            }
        });
        let exited = self
            .model
            .handlers
            .iter()
            .find(|h| is_exit_handler(h))
            .map(|h| {
                let call = self.call(h, quote!(from, exit));
                quote! {
                    fn __exited<'__tt>(
                        &'__tt mut self,
                        ctx: &'__tt mut #krate::__private::Ctx<Self>,
                        from: #krate::__private::ChildId,
                        exit: #krate::__private::ChildExit,
                    ) -> impl #krate::__private::Future<Output = #krate::__private::Result<()>> + ::core::marker::Send + '__tt {
                        async move { #call }
                    }
                }
            });

        quote! {
            #[automatically_derived]
            impl #impl_generics #krate::__private::Thread for #self_ty #where_clause {
                type Down = #down_ty;
                type Up = #up_ty;
                type Event = #event_ty;
                const TYPE_NAME: &'static str = #type_name;
                const DEFAULT_NAME: &'static str = #default_name;
                const DOWN_TYPES: &'static [&'static str] = &[#(#down_types),*];
                const UP_TYPE: #krate::__private::Option<&'static str> = #up_type;
                #capacity
                const TASKS: &'static [#krate::__private::TaskSpec] = &[#(#tasks),*];

                fn __enter<'__tt>(&'__tt mut self, ctx: &'__tt mut #krate::__private::Ctx<Self>)
                    -> impl #krate::__private::Future<Output = #krate::__private::Result<()>> + ::core::marker::Send + '__tt
                {
                    #enter
                }

                fn __exit<'__tt>(&'__tt mut self, ctx: &'__tt mut #krate::__private::Ctx<Self>)
                    -> impl #krate::__private::Future<Output = #krate::__private::Result<()>> + ::core::marker::Send + '__tt
                {
                    #exit
                }

                #[allow(unreachable_code, unused_variables)]
                fn __down<'__tt>(&'__tt mut self, ctx: &'__tt mut #krate::__private::Ctx<Self>, msg: Self::Down)
                    -> impl #krate::__private::Future<Output = #krate::__private::Result<()>> + ::core::marker::Send + '__tt
                {
                    async move {
                        match msg {
                            #(#down_arms)*
                            #down_phantom
                        }
                    }
                }

                #[allow(unreachable_code, unused_variables)]
                fn __event<'__tt>(&'__tt mut self, ctx: &'__tt mut #krate::__private::Ctx<Self>, event: Self::Event)
                    -> impl #krate::__private::Future<Output = #krate::__private::Result<()>> + ::core::marker::Send + '__tt
                {
                    async move {
                        match event {
                            #(#up_arms)*
                            #(#stream_arms)*
                            #event_phantom
                        }
                    }
                }

                #exited

                #[allow(unreachable_code, unused_variables)]
                fn __task<'__tt>(&'__tt mut self, ctx: &'__tt mut #krate::__private::Ctx<Self>, task: usize)
                    -> impl #krate::__private::Future<Output = #krate::__private::Result<#krate::__private::Reschedule>> + ::core::marker::Send + '__tt
                {
                    async move {
                        match task {
                            #(#task_arms)*
                            _ => ::core::unreachable!("no rescheduling task with index {}", task),
                        }
                    }
                }
            }
        }
    }

    fn accepts_impls(&self) -> TokenStream {
        let krate = &self.krate;
        let self_ty = &self.item.self_ty;
        let generics = self.thread_generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let down_enum = &self.down_enum;
        let impls = self.handlers(Kind::Down).map(|(i, h)| {
            let v = format_ident!("V{}", i);
            let ty = h.msg.as_ref().expect("down handlers have a message");
            let span = ty.span();
            let (wrap, unwrap_pat, asks) = match &h.output {
                Output::Value(reply) => (
                    quote!(#down_enum::#v(msg, #krate::__private::Option::None)),
                    quote!(#down_enum::#v(msg, _)),
                    quote_spanned! {span=>
                        #[automatically_derived]
                        impl #impl_generics #krate::__private::Asks<#ty> for #self_ty #where_clause {
                            type Reply = #reply;
                            fn __wrap_ask(question: #ty, reply: #krate::__private::Reply<#reply>) -> Self::Down {
                                #down_enum::#v(question, #krate::__private::Option::Some(reply))
                            }
                        }
                    },
                ),
                _ => (quote!(#down_enum::#v(msg)), quote!(#down_enum::#v(msg)), quote!()),
            };
            quote_spanned! {span=>
                #[automatically_derived]
                impl #impl_generics #krate::__private::Accepts<#ty> for #self_ty #where_clause {
                    fn __wrap(msg: #ty) -> Self::Down {
                        #wrap
                    }
                    #[allow(unreachable_patterns, clippy::unused_unit)]
                    fn __unwrap(down: Self::Down) -> #ty {
                        match down {
                            #unwrap_pat => msg,
                            _ => ::core::unreachable!("a message of another type"),
                        }
                    }
                }
                #asks
            }
        });
        quote!(#(#impls)*)
    }

    fn up_impls(&self) -> TokenStream {
        let krate = &self.krate;
        let self_ty = &self.item.self_ty;
        let generics = self.thread_generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let event_enum = &self.event_enum;
        let ups = self.handlers(Kind::Up).map(|(i, h)| {
            let v = format_ident!("U{}", i);
            let ty = h.msg.as_ref().expect("up handlers have a message");
            let span = ty.span();
            quote_spanned! {span=>
                #[automatically_derived]
                impl #impl_generics #krate::__private::HandlesUp<#ty> for #self_ty #where_clause {
                    fn __wrap_up(from: #krate::__private::ChildId, msg: #ty) -> Self::Event {
                        #event_enum::#v(from, msg)
                    }
                }
            }
        });
        let streams = self.handlers(Kind::Stream).map(|(i, h)| {
            let v = format_ident!("S{}", i);
            let ty = h.msg.as_ref().expect("stream handlers have an item");
            let span = ty.span();
            quote_spanned! {span=>
                #[automatically_derived]
                impl #impl_generics #krate::__private::HandlesStream<#ty> for #self_ty #where_clause {
                    fn __wrap_item(item: #ty) -> Self::Event {
                        #event_enum::#v(item)
                    }
                }
            }
        });
        quote!(#(#ups)* #(#streams)*)
    }

    /// Checks that the thread type and every message type are `Send + 'static`, spanned on
    /// the types the user wrote and saying why, so that these errors come first, before
    /// rustc's own about the generated code.
    fn send_checks(&self) -> TokenStream {
        let generics = self.thread_generics();
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let self_ty = &*self.item.self_ty;
        let messages = self
            .model
            .handlers
            .iter()
            .filter_map(|h| h.msg.as_ref())
            .map(|ty| spanned_generic(quote!(__Message), ty));
        let thread = spanned_generic(quote!(__Thread), self_ty);
        quote! {
            const _: () = {
                #[diagnostic::on_unimplemented(
                    message = "`{Self}` cannot be a thread: a thread moves to its own task, so it must be `Send + 'static`",
                    label = "this type is not `Send + 'static`",
                    note = "every field of a thread must be `Send + 'static`: `Arc` rather than `Rc`, `Mutex` rather than `RefCell`, owned data rather than borrows"
                )]
                trait __IsThread {}
                #[diagnostic::do_not_recommend]
                impl<T: ::core::marker::Send + 'static> __IsThread for T {}
                struct __Thread<T: __IsThread>(T);
                #[diagnostic::on_unimplemented(
                    message = "`{Self}` cannot be a message: messages move between threads, so they must be `Send + 'static`",
                    label = "this type is not `Send + 'static`",
                    note = "use `Arc` rather than `Rc`, `Mutex` rather than `RefCell`, owned data rather than borrows"
                )]
                trait __IsMessage {}
                #[diagnostic::do_not_recommend]
                impl<M: ::core::marker::Send + 'static> __IsMessage for M {}
                struct __Message<M: __IsMessage>(M);
                #[allow(dead_code, clippy::too_many_arguments, clippy::type_complexity)]
                fn __check #impl_generics (_: #thread, #(_: #messages,)*) #where_clause {}
            };
        }
    }

    /// Placeholder impls of `Accepts`, `Asks`, `HandlesUp` and `HandlesStream` for a type
    /// that has no values, hidden from diagnostics.
    ///
    /// They are there for the errors. When a trait has exactly one impl for a type, rustc
    /// infers the trait's parameter from it and reports "mismatched types" (or a projection
    /// mismatch) instead of the trait's `#[diagnostic::on_unimplemented]` message; with none,
    /// it reports that message before the argument's type is known ("no handler for `_`").
    /// With one more impl that can never be used, `child.send(pong)` for a type with no
    /// handler says "`Child` has no `#[down]` handler for `Pong`". Skipped where a handler's
    /// type could be the placeholder (a bare type parameter), as the impls would overlap.
    fn placeholder_impls(&self) -> TokenStream {
        let krate = &self.krate;
        let self_ty = &self.item.self_ty;
        let mut generics = self.thread_generics();
        generics.params.push(parse_quote!(__P: __Placeholder));
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let attrs = quote! {
            #[automatically_derived]
            #[doc(hidden)]
            #[diagnostic::do_not_recommend]
        };
        let free = |kind: Kind| {
            self.handlers(kind)
                .all(|(_, h)| !h.msg.as_ref().is_some_and(|ty| self.may_be_placeholder(ty)))
        };
        let mut impls = TokenStream::new();
        if free(Kind::Down) {
            impls.extend(quote! {
                #attrs
                impl #impl_generics #krate::__private::Accepts<__P> for #self_ty #where_clause {
                    fn __wrap(msg: __P) -> Self::Down {
                        msg.__absurd()
                    }
                    fn __unwrap(down: Self::Down) -> __P {
                        let _ = down;
                        ::core::unreachable!("no message has a type without values")
                    }
                }
                #attrs
                impl #impl_generics #krate::__private::Asks<__P> for #self_ty #where_clause {
                    type Reply = #krate::__private::Infallible;
                    fn __wrap_ask(msg: __P, reply: #krate::__private::Reply<Self::Reply>) -> Self::Down {
                        let _ = reply;
                        msg.__absurd()
                    }
                }
            });
        }
        if free(Kind::Up) {
            impls.extend(quote! {
                #attrs
                impl #impl_generics #krate::__private::HandlesUp<__P> for #self_ty #where_clause {
                    fn __wrap_up(from: #krate::__private::ChildId, msg: __P) -> Self::Event {
                        let _ = from;
                        msg.__absurd()
                    }
                }
            });
        }
        if free(Kind::Stream) {
            impls.extend(quote! {
                #attrs
                impl #impl_generics #krate::__private::HandlesStream<__P> for #self_ty #where_clause {
                    fn __wrap_item(item: __P) -> Self::Event {
                        item.__absurd()
                    }
                }
            });
        }
        if impls.is_empty() {
            return impls;
        }
        quote! {
            const _: () = {
                trait __Placeholder {
                    fn __absurd<T>(self) -> T;
                }
                impl __Placeholder for #krate::__private::Infallible {
                    fn __absurd<T>(self) -> T {
                        match self {}
                    }
                }
                #impls
            };
        }
    }

    /// Whether a handler's type might be the placeholder (`Infallible`), so that a
    /// placeholder impl could overlap with its impl.
    fn may_be_placeholder(&self, ty: &Type) -> bool {
        match ty {
            Type::Paren(t) => self.may_be_placeholder(&t.elem),
            Type::Group(t) => self.may_be_placeholder(&t.elem),
            Type::Path(p) => {
                let first = &p.path.segments[0].ident;
                p.qself.is_some()
                    || first == "Self"
                    || p.path
                        .segments
                        .last()
                        .is_some_and(|s| s.ident == "Infallible")
                    || self
                        .item
                        .generics
                        .params
                        .iter()
                        .any(|param| matches!(param, GenericParam::Type(t) if t.ident == *first))
            }
            Type::Macro(_) | Type::Verbatim(_) => true,
            _ => false,
        }
    }

    fn task_consts(&self) -> TokenStream {
        let krate = &self.krate;
        let self_ty = &self.item.self_ty;
        let (impl_generics, _, where_clause) = self.item.generics.split_for_impl();
        let consts = self.handlers(Kind::Rescheduling).map(|(i, h)| {
            let name = format_ident!("{}", h.ident.to_string().to_uppercase(), span = h.ident.span());
            let doc = format!(
                "The `{}` rescheduling task, for `ctx.start_task`, `ctx.reschedule_task` and `ctx.cancel_task`.",
                h.ident
            );
            quote! {
                #[doc = #doc]
                #[allow(dead_code, unreachable_pub)]
                pub const #name: #krate::__private::TaskRef<Self> = #krate::__private::TaskRef::__new(#i);
            }
        });
        let consts: Vec<_> = consts.collect();
        if consts.is_empty() {
            return quote!();
        }
        quote! {
            #[automatically_derived]
            impl #impl_generics #self_ty #where_clause {
                #(#consts)*
            }
        }
    }
}

/// `wrapper<ty>`, spanned from the type's first token to its last so that an error about
/// the bound of `wrapper` underlines the whole type as the user wrote it.
fn spanned_generic(wrapper: TokenStream, ty: &Type) -> TokenStream {
    let first = ty.span();
    let last = ty
        .to_token_stream()
        .into_iter()
        .last()
        .map_or(first, |t| t.span());
    let close = quote_spanned!(last=> >);
    let wrapper = wrapper.into_iter().map(|mut t| {
        t.set_span(first);
        t
    });
    quote_spanned!(first=> #(#wrapper)* < #ty #close)
}

fn is_exit_handler(h: &Handler) -> bool {
    h.kind == Kind::Up && h.msg.as_ref().is_some_and(ast::is_child_exit)
}

fn duration(krate: &Path, d: std::time::Duration) -> TokenStream {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    quote!(#krate::__private::Duration::new(#secs, #nanos))
}

fn task_spec(krate: &Path, h: &Handler) -> TokenStream {
    let name = h.ident.to_string();
    let every = match h.task.every {
        Some(d) => {
            let d = duration(krate, d);
            quote!(#krate::__private::Option::Some(#d))
        }
        None => quote!(#krate::__private::Option::None),
    };
    let delay = duration(krate, h.task.delay.unwrap_or_default());
    let manual = h.task.manual;
    let missed = match h.task.missed.map(|(m, _)| m).unwrap_or_default() {
        Missed::Skip => quote!(Skip),
        Missed::Burst => quote!(Burst),
        Missed::Delay => quote!(Delay),
    };
    quote! {
        #krate::__private::TaskSpec {
            name: #name,
            every: #every,
            delay: #delay,
            manual: #manual,
            missed: #krate::__private::MissedTicks::#missed,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("TcpServer"), "tcp_server");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Master"), "master");
        assert_eq!(snake_case("DataProcessor2"), "data_processor2");
        assert_eq!(snake_case("WebsocketSub"), "websocket_sub");
    }
}
