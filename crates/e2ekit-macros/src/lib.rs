//! The `#[e2ekit::test]` attribute. Use it through the `e2ekit` crate (`#[e2ekit::test]`),
//! which documents it; this crate only holds the procedural macro.
//!
//! ```ignore
//! use e2ekit::prelude::*;
//!
//! #[e2ekit::test]
//! async fn backend_answers(env: Environment) -> e2ekit::Result<()> {
//!     let app = env.runnable("app").init(StartOptions::new("busybox"))?;
//!     app.start().await?;
//!     Ok(())
//! }
//! ```

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, MetaNameValue, ReturnType, Token, Type};

// Documented where e2ekit re-exports it (`e2ekit::test`).
#[proc_macro_attribute]
pub fn test(
    args: proc_macro::TokenStream,
    item: proc_macro::TokenStream,
) -> proc_macro::TokenStream {
    match expand(args.into(), item.clone().into()) {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            // The error, plus the function unchanged, so the rest of the file still resolves
            // (and the user sees this one error, not many follow-ups).
            let mut out = error.to_compile_error();
            out.extend(TokenStream::from(item));
            out.into()
        }
    }
}

/// The runtime the generated test builds, as `tokio::test` spells it.
#[derive(Debug, PartialEq)]
enum Flavor {
    CurrentThread,
    MultiThread { workers: Option<usize> },
}

/// The attribute's options.
struct Options {
    flavor: Flavor,
    name: Option<String>,
    krate: syn::Path,
}

const EXPECTED_SIGNATURE: &str =
    "expected `async fn name(env: Environment) -> e2ekit::Result<()>` (or without a return type)";

fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let pairs = Punctuated::<MetaNameValue, Token![,]>::parse_terminated.parse2(args)?;
    let mut flavor: Option<(String, Span)> = None;
    let mut workers: Option<(usize, Span)> = None;
    let mut name = None;
    let mut krate: syn::Path = syn::parse_quote!(::e2ekit);
    for pair in pairs {
        let key = pair.path.to_token_stream().to_string();
        match key.as_str() {
            "flavor" => {
                let value = string_value(&pair.value, "flavor")?;
                if value != "current_thread" && value != "multi_thread" {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        format!(
                            "unknown flavor {value:?}: use \"current_thread\" (the default) or \"multi_thread\""
                        ),
                    ));
                }
                flavor = Some((value, pair.value.span()));
            }
            "worker_threads" => {
                let n = match &pair.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Int(i), ..
                    }) => i.base10_parse::<usize>()?,
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "worker_threads takes a number: worker_threads = 2",
                        ))
                    }
                };
                if n == 0 {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        "worker_threads must be at least 1",
                    ));
                }
                workers = Some((n, pair.value.span()));
            }
            "name" => {
                let value = string_value(&pair.value, "name")?;
                if let Err(reason) = check_env_name(&value) {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        format!("invalid environment name {value:?}: {reason}"),
                    ));
                }
                name = Some(value);
            }
            "crate" => {
                let value = string_value(&pair.value, "crate")?;
                krate = syn::parse_str(&value).map_err(|_| {
                    syn::Error::new(
                        pair.value.span(),
                        format!("crate = {value:?} is not a path to the e2ekit crate"),
                    )
                })?;
            }
            _ => {
                return Err(syn::Error::new(
                    pair.path.span(),
                    format!(
                        "unknown option `{key}`; #[e2ekit::test] takes flavor = \"current_thread\" | \"multi_thread\", worker_threads = N, name = \"environment-name\" and crate = \"path\""
                    ),
                ))
            }
        }
    }
    let flavor = match (flavor, workers) {
        (Some((f, _)), w) if f == "multi_thread" => Flavor::MultiThread {
            workers: w.map(|(n, _)| n),
        },
        (_, Some((_, span))) => {
            return Err(syn::Error::new(
                span,
                "worker_threads needs flavor = \"multi_thread\" (the default runtime is current-thread)",
            ))
        }
        _ => Flavor::CurrentThread,
    };
    Ok(Options {
        flavor,
        name,
        krate,
    })
}

fn string_value(value: &Expr, key: &str) -> syn::Result<String> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.value()),
        other => Err(syn::Error::new(
            other.span(),
            format!("{key} takes a string: {key} = \"...\""),
        )),
    }
}

/// The rule `e2ekit` applies to explicit environment names, checked at compile time.
fn check_env_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 40 {
        return Err("must be 1 to 40 characters long".into());
    }
    let mut chars = name.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("use letters, digits, '-', '_' or '.', starting with a letter or digit".into());
    }
    Ok(())
}

/// Checks the function's shape; every error points at the offending part.
fn check_signature(f: &ItemFn) -> syn::Result<()> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span(),
            format!("#[e2ekit::test] needs an async function: {EXPECTED_SIGNATURE}"),
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            format!("a test function cannot be generic: {EXPECTED_SIGNATURE}"),
        ));
    }
    if let Some(v) = &sig.variadic {
        return Err(syn::Error::new(v.span(), EXPECTED_SIGNATURE));
    }
    if sig.inputs.is_empty() {
        return Err(syn::Error::new(
            sig.paren_token.span.join(),
            format!(
                "#[e2ekit::test] passes the test its environment, so the function takes it as its one argument: {EXPECTED_SIGNATURE}; for a test without an environment use #[tokio::test]"
            ),
        ));
    }
    if sig.inputs.len() > 1 {
        let extra = sig.inputs.iter().nth(1).map(Spanned::span);
        return Err(syn::Error::new(
            extra.unwrap_or_else(|| sig.inputs.span()),
            format!("#[e2ekit::test] passes exactly one argument, the environment: {EXPECTED_SIGNATURE}"),
        ));
    }
    match &sig.inputs[0] {
        FnArg::Receiver(r) => {
            return Err(syn::Error::new(
                r.span(),
                format!("a test function cannot take self: {EXPECTED_SIGNATURE}"),
            ))
        }
        FnArg::Typed(t) => {
            let is_environment = matches!(&*t.ty, Type::Path(p)
                if p.qself.is_none()
                    && p.path.segments.last().is_some_and(|s| s.ident == "Environment" && s.arguments.is_empty()));
            if !is_environment {
                return Err(syn::Error::new(
                    t.ty.span(),
                    format!("the argument must be the environment, owned: `env: Environment` (e2ekit::Environment); {EXPECTED_SIGNATURE}"),
                ));
            }
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        let ok = match &**ty {
            Type::Tuple(t) => t.elems.is_empty(),
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        };
        if !ok {
            return Err(syn::Error::new(
                ty.span(),
                format!("unsupported return type: {EXPECTED_SIGNATURE}"),
            ));
        }
    }
    Ok(())
}

/// The whole expansion, on token streams (unit-tested below).
fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(args)?;
    let f: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[e2ekit::test] goes on a function: {EXPECTED_SIGNATURE}"),
        )
    })?;
    check_signature(&f)?;
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    let krate = &options.krate;
    let ident = &sig.ident;
    let function = ident.to_string();
    let name = match &options.name {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let flavor = match options.flavor {
        Flavor::CurrentThread => quote!(#krate::__private::Flavor::CurrentThread),
        Flavor::MultiThread { workers } => {
            let workers = match workers {
                Some(n) => quote!(::core::option::Option::Some(#n)),
                None => quote!(::core::option::Option::None),
            };
            quote!(#krate::__private::Flavor::MultiThread(#workers))
        }
    };
    // The user's function, unchanged, inside the generated test (so `?`, return types and
    // error spans are the user's own); the test calls it with the environment.
    let inner_sig = &sig;
    let test_attr = quote_spanned!(sig.fn_token.span()=> #[::core::prelude::v1::test]);
    // A return type the runner does not take is reported on the return type.
    let check_outcome = match &sig.output {
        ReturnType::Type(_, ty) => {
            quote_spanned!(ty.span()=> #krate::__private::check_outcome::<#ty>();)
        }
        ReturnType::Default => quote!(),
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis fn #ident() -> ::core::result::Result<(), #krate::__private::TestFailure> {
            #inner_sig #block
            #check_outcome
            #krate::__private::run_test(
                #krate::__private::TestSpec {
                    module_path: ::core::module_path!(),
                    function: #function,
                    name: #name,
                    flavor: #flavor,
                },
                #ident,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    // Not `super::*`: that would bring this crate's `test` into scope, ambiguous with `#[test]`.
    use super::{expand, FnArg, ItemFn, Spanned, TokenStream};
    use quote::quote;

    fn error(args: TokenStream, item: TokenStream) -> String {
        expand(args, item).expect_err("must be refused").to_string()
    }

    #[test]
    fn expands_the_usual_signature() {
        let out = expand(
            quote!(),
            quote!(
                async fn passes(env: Environment) -> e2ekit::Result<()> {
                    Ok(())
                }
            ),
        )
        .expect("expands")
        .to_string();
        assert!(
            out.contains("# [:: core :: prelude :: v1 :: test]"),
            "{out}"
        );
        assert!(out.contains("fn passes ()"), "{out}");
        assert!(out.contains("async fn passes (env : Environment)"), "{out}");
        assert!(out.contains(":: e2ekit :: __private :: run_test"), "{out}");
        assert!(out.contains("function : \"passes\""), "{out}");
        assert!(out.contains("Flavor :: CurrentThread"), "{out}");
        // The return type is checked where the user wrote it.
        assert!(
            out.contains("check_outcome :: < e2ekit :: Result < () > > ()"),
            "{out}"
        );
    }

    #[test]
    fn unit_return_mut_binding_and_attributes_are_kept() {
        let out = expand(
            quote!(),
            quote!(
                #[ignore]
                async fn t(mut env: e2ekit::Environment) {}
            ),
        )
        .expect("expands")
        .to_string();
        assert!(out.contains("# [ignore]"), "{out}");
        assert!(
            out.contains("async fn t (mut env : e2ekit :: Environment)"),
            "{out}"
        );
    }

    #[test]
    fn options_mirror_tokio_and_name_the_environment() {
        let out = expand(
            quote!(
                flavor = "multi_thread",
                worker_threads = 2,
                name = "my-env",
                crate = "::e2"
            ),
            quote!(
                async fn t(env: Environment) {}
            ),
        )
        .expect("expands")
        .to_string();
        assert!(
            out.contains("Flavor :: MultiThread (:: core :: option :: Option :: Some (2usize))"),
            "{out}"
        );
        assert!(out.contains("Some (\"my-env\")"), "{out}");
        assert!(out.contains(":: e2 :: __private :: run_test"), "{out}");
    }

    #[test]
    fn wrong_signatures_say_what_is_expected() {
        let env_fn = quote!(
            async fn t(env: Environment) {}
        );
        for (args, item, expected) in [
            (
                quote!(),
                quote!(
                    fn t(env: Environment) {}
                ),
                "needs an async function",
            ),
            (
                quote!(),
                quote!(
                    async fn t() {}
                ),
                "takes it as its one argument",
            ),
            (
                quote!(),
                quote!(
                    async fn t(a: Environment, b: u8) {}
                ),
                "exactly one argument",
            ),
            (
                quote!(),
                quote!(
                    async fn t(env: &Environment) {}
                ),
                "the argument must be the environment",
            ),
            (
                quote!(),
                quote!(
                    async fn t(env: String) {}
                ),
                "the argument must be the environment",
            ),
            (
                quote!(),
                quote!(
                    async fn t<T>(env: Environment) {}
                ),
                "cannot be generic",
            ),
            (
                quote!(),
                quote!(
                    async fn t(env: Environment) -> u32 {
                        1
                    }
                ),
                "unsupported return type",
            ),
            (
                quote!(),
                quote!(
                    struct S;
                ),
                "goes on a function",
            ),
            (
                quote!(flavor = "threaded"),
                env_fn.clone(),
                "unknown flavor",
            ),
            (
                quote!(worker_threads = 2),
                env_fn.clone(),
                "worker_threads needs flavor",
            ),
            (
                quote!(flavor = "multi_thread", worker_threads = 0),
                env_fn.clone(),
                "at least 1",
            ),
            (
                quote!(name = "no spaces"),
                env_fn.clone(),
                "invalid environment name",
            ),
            (quote!(name = 3), env_fn.clone(), "name takes a string"),
            (
                quote!(start_paused = true),
                env_fn.clone(),
                "unknown option `start_paused`",
            ),
        ] {
            let err = error(args, item);
            assert!(err.contains(expected), "expected {expected:?} in {err:?}");
        }
    }

    #[test]
    fn errors_point_at_the_offending_item() {
        // The span of the error is the argument's type, not the whole function.
        let item: TokenStream = "async fn t(env: String) {}".parse().expect("tokens");
        let ty_span = {
            let f: ItemFn = syn::parse2(item.clone()).expect("fn");
            match &f.sig.inputs[0] {
                FnArg::Typed(t) => t.ty.span(),
                FnArg::Receiver(_) => unreachable!(),
            }
        };
        let err = expand(quote!(), item).expect_err("refused");
        assert_eq!(format!("{:?}", err.span()), format!("{ty_span:?}"));
    }
}
