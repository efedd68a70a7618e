//! One spelling per enum value. [`spelled!`] declares a fieldless enum together with its text
//! form, and derives from that one table `as_str`, `FromStr`, `Display` and serde: the snapshot
//! and report formats, the stores' columns and the CLI all read and write the same words.

/// A value that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?}, expected one of: {}", expected.join(", "))]
pub struct UnknownSpelling {
    /// What was being read (`order status`, `side`, …).
    pub what: &'static str,
    /// The text found.
    pub found: String,
    /// Every spelling that would have been accepted.
    pub expected: &'static [&'static str],
}

/// Declares a fieldless enum and its one spelling per variant.
macro_rules! spelled {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// Every spelling, in declaration order.
            pub const SPELLINGS: &'static [&'static str] = &[$($text),+];

            /// The value's one spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::spelling::UnknownSpelling;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err($crate::spelling::UnknownSpelling {
                        what: $what,
                        found: s.to_owned(),
                        expected: Self::SPELLINGS,
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl $crate::text::FromText for $name {
            fn from_text<E: ::serde::de::Error>(text: &str) -> Result<Self, E> {
                text.parse().map_err(|_| E::unknown_variant(text, Self::SPELLINGS))
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::text::deserialize(d)
            }
        }
    };
}
pub(crate) use spelled;
