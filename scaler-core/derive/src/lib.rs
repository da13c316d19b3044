//! The `ScalerParams` derive of `scaler-core`. Use it as `scaler_core::ScalerParams`; the
//! attributes are documented on the `scaler_core::ScalerParams` trait.

#![warn(missing_docs)]

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Data, DeriveInput, Expr, ExprLit, ExprUnary, Fields, GenericArgument, Ident, Lit,
    LitStr, PathArguments, Token, Type, UnOp, parenthesized, parse_macro_input,
};

/// Derives `scaler_core::ScalerParams` for a struct of trigger parameters: each field is
/// looked up by its `#[param(...)]` declaration (name, aliases, order of sources, default).
#[proc_macro_derive(ScalerParams, attributes(param, params))]
pub fn derive_scaler_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

#[derive(Default)]
struct ParamAttr {
    /// `name = ...`, if given.
    name: Option<String>,
    /// `alias = ...`, in order.
    names: Vec<String>,
    order: Vec<Ident>,
    optional: bool,
    default: Option<String>,
    one_of: Vec<String>,
    separator: Option<String>,
    min: Option<Expr>,
    max: Option<Expr>,
    deprecated: Option<String>,
    skip: bool,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            input,
            "ScalerParams can only be derived for structs",
        ));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new_spanned(
            input,
            "ScalerParams needs a struct with named fields",
        ));
    };
    let validate = struct_validate(&input.attrs)?;

    let mut specs = Vec::new();
    let mut reads = Vec::new();
    let mut vars = Vec::new();
    let mut inits = Vec::new();
    for field in &fields.named {
        let Some(ident) = &field.ident else { continue };
        let attr = field_attr(&field.attrs)?;
        if attr.skip {
            inits.push(quote!(#ident: ::core::default::Default::default()));
            continue;
        }
        let index = specs.len();
        // The name (explicit, else the field's in camelCase) comes first, then the aliases.
        let mut names = vec![
            attr.name
                .clone()
                .unwrap_or_else(|| camel_case(&ident.to_string())),
        ];
        names.extend(attr.names.iter().cloned());
        let order = if attr.order.is_empty() {
            vec![format_ident!("TriggerMetadata")]
        } else {
            attr.order.clone()
        };
        let option_inner = option_inner(&field.ty);
        let optional = attr.optional || option_inner.is_some();
        let default = opt_str(&attr.default);
        let separator = opt_str(&attr.separator);
        let deprecated = opt_str(&attr.deprecated);
        let min = opt_f64(&attr.min);
        let max = opt_f64(&attr.max);
        let one_of = &attr.one_of;
        let doc = doc_comment(&field.attrs);
        specs.push(quote! {
            ::scaler_core::ParamSpec {
                names: &[#(#names),*],
                order: &[#(::scaler_core::Source::#order),*],
                optional: #optional,
                default: #default,
                one_of: &[#(#one_of),*],
                separator: #separator,
                min: #min,
                max: #max,
                deprecated: #deprecated,
                doc: #doc,
            }
        });
        let var = format_ident!("__param_{}", ident);
        let ty = &field.ty;
        let read = match (option_inner, attr.optional) {
            (Some(inner), _) => quote!(reader.optional::<#inner>(&Self::PARAMS[#index])),
            (None, true) => quote!(reader.or_default::<#ty>(&Self::PARAMS[#index])),
            (None, false) => quote!(reader.required::<#ty>(&Self::PARAMS[#index])),
        };
        reads.push(quote!(let #var = #read;));
        inits.push(quote!(#ident: #var));
        vars.push(var);
    }

    let name = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let validate_call = validate.map(|path| {
        quote! {
            if let ::core::result::Result::Err(problem) = (#path)(&value) {
                reader.problem(problem);
                return ::core::result::Result::Err(reader.into_error());
            }
        }
    });
    let build = quote! {
        if reader.is_ok() {
            let value = Self { #(#inits),* };
            #validate_call
            return ::core::result::Result::Ok(value);
        }
    };
    let body = if vars.is_empty() {
        build
    } else {
        quote! {
            if let (#(::core::option::Option::Some(#vars),)*) = (#(#vars,)*) {
                #build
            }
        }
    };
    Ok(quote! {
        impl #impl_generics ::scaler_core::ScalerParams for #name #ty_generics #where_clause {
            const PARAMS: &'static [::scaler_core::ParamSpec] = &[#(#specs),*];

            fn from_config(
                cfg: &::scaler_core::ScalerConfig,
            ) -> ::core::result::Result<Self, ::scaler_core::ScalerError> {
                let mut reader = ::scaler_core::ParamReader::new(cfg);
                #(#reads)*
                #body
                ::core::result::Result::Err(reader.into_error())
            }
        }
    })
}

fn struct_validate(attrs: &[Attribute]) -> syn::Result<Option<syn::ExprPath>> {
    let mut validate = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("params")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("validate") {
                let lit: LitStr = meta.value()?.parse()?;
                validate = Some(lit.parse()?);
                Ok(())
            } else {
                Err(meta.error("unknown #[params] attribute; expected `validate = \"path\"`"))
            }
        })?;
    }
    Ok(validate)
}

fn field_attr(attrs: &[Attribute]) -> syn::Result<ParamAttr> {
    let mut out = ParamAttr::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("param")) {
        attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("name") || path.is_ident("alias") {
                let lit: LitStr = meta.value()?.parse()?;
                if path.is_ident("name") {
                    out.name = Some(lit.value());
                } else {
                    out.names.push(lit.value());
                }
            } else if path.is_ident("from") {
                let content;
                parenthesized!(content in meta.input);
                let sources = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                for source in sources {
                    let variant = match source.to_string().as_str() {
                        "metadata" => "TriggerMetadata",
                        "auth" => "AuthParams",
                        "env" => "ResolvedEnv",
                        _ => {
                            return Err(syn::Error::new_spanned(
                                source,
                                "expected `metadata`, `auth` or `env`",
                            ));
                        }
                    };
                    out.order.push(Ident::new(variant, source.span()));
                }
            } else if path.is_ident("optional") {
                out.optional = true;
            } else if path.is_ident("skip") {
                out.skip = true;
            } else if path.is_ident("default") {
                out.default = Some(literal_text(&meta.value()?.parse()?)?);
            } else if path.is_ident("one_of") {
                let content;
                parenthesized!(content in meta.input);
                let values = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?;
                out.one_of = values.iter().map(LitStr::value).collect();
            } else if path.is_ident("separator") {
                out.separator = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if path.is_ident("deprecated") {
                out.deprecated = Some(meta.value()?.parse::<LitStr>()?.value());
            } else if path.is_ident("min") {
                out.min = Some(meta.value()?.parse()?);
            } else if path.is_ident("max") {
                out.max = Some(meta.value()?.parse()?);
            } else {
                return Err(meta.error(
                    "unknown #[param] attribute; expected one of name, alias, from, optional, \
                     default, one_of, separator, min, max, deprecated, skip",
                ));
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The text of a literal default, as it would be written in YAML metadata.
fn literal_text(expr: &Expr) -> syn::Result<String> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(s) => Ok(s.value()),
            Lit::Int(i) => Ok(i.base10_digits().to_owned()),
            Lit::Float(f) => Ok(f.base10_digits().to_owned()),
            Lit::Bool(b) => Ok(b.value.to_string()),
            _ => Err(syn::Error::new_spanned(
                lit,
                "default must be a string, number or bool",
            )),
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr,
            ..
        }) => Ok(format!("-{}", literal_text(expr)?)),
        _ => Err(syn::Error::new_spanned(
            expr,
            "default must be a literal such as \"x\", 10 or true",
        )),
    }
}

fn opt_str(value: &Option<String>) -> Tokens {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

fn opt_f64(value: &Option<Expr>) -> Tokens {
    match value {
        Some(v) => quote!(::core::option::Option::Some((#v) as f64)),
        None => quote!(::core::option::Option::None),
    }
}

/// `Some(T)` if `ty` is written `Option<T>`.
fn option_inner(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let segment = path.path.segments.last()?;
    if segment.ident != "Option" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(inner) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn doc_comment(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `lag_threshold` → `lagThreshold`; `r#type` → `type`.
fn camel_case(field: &str) -> String {
    let field = field.strip_prefix("r#").unwrap_or(field);
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}
