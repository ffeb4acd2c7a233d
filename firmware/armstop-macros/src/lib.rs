//! `#[target_test]`: registers a function with armstop's on-target test harness.
//!
//! The function must take no arguments and return `()`; the attribute keeps it as written and
//! adds a `TestCase` static in the `.armstop_tests` link section, which the harness walks.
//! Hand-parsed (no `syn`): it only needs the function's name and to reject what it cannot run.

use proc_macro::{Delimiter, TokenStream, TokenTree};

/// Marks a `fn()` as an on-target test.
#[proc_macro_attribute]
pub fn target_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("#[target_test] takes no arguments");
    }
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let Some(pos) =
        tokens.iter().position(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "fn"))
    else {
        return error("#[target_test] applies to functions");
    };
    let Some(TokenTree::Ident(name)) = tokens.get(pos + 1) else {
        return error("#[target_test]: expected a function name after `fn`");
    };
    if tokens[..pos].iter().any(|t| matches!(t, TokenTree::Ident(i) if i.to_string() == "async")) {
        return error("#[target_test] functions cannot be async");
    }
    match tokens.get(pos + 2) {
        Some(TokenTree::Group(g))
            if g.delimiter() == Delimiter::Parenthesis && g.stream().is_empty() => {}
        Some(TokenTree::Punct(p)) if p.as_char() == '<' => {
            return error("#[target_test] functions cannot be generic");
        }
        _ => return error("#[target_test] functions take no arguments"),
    }
    if let Some(TokenTree::Punct(p)) = tokens.get(pos + 3)
        && p.as_char() == '-'
    {
        return error("#[target_test] functions return (): fail with a panic or assert");
    }
    let name = name.to_string();
    let registration: TokenStream = format!(
        "const _: () = {{
            #[used]
            #[unsafe(link_section = \".armstop_tests\")]
            static TEST: ::armstop::testing::TestCase = ::armstop::testing::TestCase {{
                name: ::core::concat!(::core::module_path!(), \"::\", \"{name}\"),
                func: {name},
            }};
        }};"
    )
    .parse()
    .expect("registration tokens");
    let mut out = item;
    out.extend(registration);
    out
}

fn error(msg: &str) -> TokenStream {
    format!("::core::compile_error!({msg:?});").parse().expect("compile_error tokens")
}
