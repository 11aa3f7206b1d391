//! Argument types a tool may declare, and their check. The same check runs
//! on both sides of the boundary: in the child runtime before a call leaves
//! the sandbox, and on the host before the tool runs (both reach it through
//! the glue). It mirrors R's own predicates (`is.numeric()`, `is.integer()`,
//! `is.matrix()`, ...) for the values that can cross: base types and the
//! classes R itself defines methods for.

/// The declarable types, in the order the documentation lists them.
pub const TOOL_TYPES: [&str; 10] = [
    "numeric",
    "integer",
    "character",
    "logical",
    "list",
    "data.frame",
    "matrix",
    "complex",
    "raw",
    "any",
];

/// The R base type of a value (its `typeof()`), as far as the check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseType {
    Null,
    Logical,
    Integer,
    Double,
    Complex,
    Character,
    Raw,
    /// A generic vector (`VECSXP`).
    List,
    /// A pairlist (`LISTSXP`).
    Pairlist,
    /// An expression vector (`EXPRSXP`): a vector, but not a list.
    Expression,
    Other,
}

/// What the check needs to know about a value.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub base: BaseType,
    /// The `class` attribute (empty when there is none).
    pub classes: &'a [&'a str],
    /// Length of the `dim` attribute when it is an integer vector.
    pub dim_len: Option<usize>,
}

impl Shape<'_> {
    fn inherits(&self, class: &str) -> bool {
        self.classes.contains(&class)
    }

    /// `is.numeric()`: integer (not a factor) or double, and not one of the
    /// classes whose base R `is.numeric` method says no.
    fn is_numeric(&self) -> bool {
        let base_numeric = match self.base {
            BaseType::Integer => !self.inherits("factor"),
            BaseType::Double => true,
            _ => false,
        };
        base_numeric
            && !["Date", "POSIXt", "difftime"]
                .iter()
                .any(|c| self.inherits(c))
    }

    /// `is.matrix()`: a vector whose `dim` attribute has length 2.
    fn is_matrix(&self) -> bool {
        let vector = !matches!(
            self.base,
            BaseType::Null | BaseType::Pairlist | BaseType::Other
        );
        vector && self.dim_len == Some(2)
    }
}

/// Is `type_name` a type a tool may declare?
pub fn is_tool_type(type_name: &str) -> bool {
    TOOL_TYPES.contains(&type_name)
}

/// Does a value of this shape pass `type_name`? `integer_valued` is asked
/// only for numeric doubles checked against `"integer"`: whether every
/// element is NA/NaN or a whole number (see `all_integer_valued`). Unknown
/// types fail.
pub fn type_ok(type_name: &str, shape: &Shape, integer_valued: impl FnOnce() -> bool) -> bool {
    match type_name {
        "numeric" => shape.is_numeric(),
        "integer" => {
            // is.integer(x) || (is.numeric(x) && all(is.na(x) | x == round(x)))
            let is_integer = shape.base == BaseType::Integer && !shape.inherits("factor");
            is_integer || (shape.is_numeric() && shape.base == BaseType::Double && integer_valued())
        }
        "character" => shape.base == BaseType::Character,
        "logical" => shape.base == BaseType::Logical,
        "list" => matches!(shape.base, BaseType::List | BaseType::Pairlist),
        "data.frame" => shape.inherits("data.frame"),
        "matrix" => shape.is_matrix(),
        "complex" => shape.base == BaseType::Complex,
        "raw" => shape.base == BaseType::Raw,
        "any" => true,
        _ => false,
    }
}

/// `all(is.na(x) | x == round(x))` for doubles: NA and NaN pass, and so do
/// the infinities (`Inf == round(Inf)`).
pub fn all_integer_valued(xs: impl IntoIterator<Item = f64>) -> bool {
    xs.into_iter().all(|x| x.is_nan() || x == x.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape<'a>(base: BaseType, classes: &'a [&'a str], dim_len: Option<usize>) -> Shape<'a> {
        Shape {
            base,
            classes,
            dim_len,
        }
    }

    #[test]
    fn numeric_follows_is_numeric() {
        let ok = |s: Shape| type_ok("numeric", &s, || unreachable!());
        assert!(ok(shape(BaseType::Double, &[], None)));
        assert!(ok(shape(BaseType::Integer, &[], None)));
        assert!(!ok(shape(BaseType::Logical, &[], None)));
        assert!(!ok(shape(BaseType::Integer, &["factor"], None)));
        assert!(!ok(shape(BaseType::Double, &["Date"], None)));
        assert!(!ok(shape(BaseType::Double, &["POSIXct", "POSIXt"], None)));
        assert!(!ok(shape(BaseType::Double, &["difftime"], None)));
        assert!(ok(shape(BaseType::Double, &["table"], Some(1))));
    }

    #[test]
    fn integer_follows_is_integer_or_whole_doubles() {
        let int = shape(BaseType::Integer, &[], None);
        assert!(type_ok("integer", &int, || unreachable!()));
        let factor = shape(BaseType::Integer, &["factor"], None);
        assert!(!type_ok("integer", &factor, || unreachable!()));
        let dbl = shape(BaseType::Double, &[], None);
        assert!(type_ok("integer", &dbl, || true));
        assert!(!type_ok("integer", &dbl, || false));
        let date = shape(BaseType::Double, &["Date"], None);
        assert!(!type_ok("integer", &date, || true));
        assert!(all_integer_valued([
            1.0,
            f64::NAN,
            f64::INFINITY,
            -3.0,
            1e300
        ]));
        assert!(!all_integer_valued([1.0, 1.5]));
        assert!(all_integer_valued([]));
    }

    #[test]
    fn matrices_lists_and_the_rest() {
        assert!(type_ok(
            "matrix",
            &shape(BaseType::List, &[], Some(2)),
            || false
        ));
        assert!(!type_ok(
            "matrix",
            &shape(BaseType::Double, &[], Some(3)),
            || false
        ));
        assert!(!type_ok(
            "matrix",
            &shape(BaseType::Null, &[], Some(2)),
            || false
        ));
        assert!(type_ok(
            "list",
            &shape(BaseType::Pairlist, &[], None),
            || false
        ));
        assert!(type_ok(
            "list",
            &shape(BaseType::List, &["data.frame"], None),
            || false
        ));
        assert!(!type_ok("list", &shape(BaseType::Null, &[], None), || {
            false
        }));
        assert!(type_ok(
            "data.frame",
            &shape(BaseType::List, &["tbl", "data.frame"], None),
            || false
        ));
        assert!(type_ok("any", &shape(BaseType::Other, &[], None), || false));
        assert!(!type_ok(
            "function",
            &shape(BaseType::Other, &[], None),
            || false
        ));
        assert!(!type_ok(
            "character",
            &shape(BaseType::Integer, &["factor"], None),
            || false
        ));
        for t in TOOL_TYPES {
            assert!(is_tool_type(t));
        }
        assert!(!is_tool_type("function"));
    }
}
