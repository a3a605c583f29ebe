//! `fields=` without the `serde_json::Value` round trip: [`Projected`] serializes a typed item
//! and drops, at the top level only, every field that is neither `href` nor asked for. The
//! answer is what `Query::apply`'s projection gives (same keys and values; keys keep the
//! item's own order rather than the request's, which JSON objects do not promise anyway),
//! at the cost of writing the kept fields once instead of building a tree of every field,
//! moving it and writing it again.

use serde::ser::{self, Serialize, SerializeMap, SerializeStruct, Serializer};

/// `item` with only `href` and `fields` at its top level.
pub struct Projected<'a, T> {
    pub item: &'a T,
    pub fields: &'a [String],
}

impl<T: Serialize> Serialize for Projected<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.item.serialize(TopLevel {
            inner: serializer,
            fields: self.fields,
        })
    }
}

fn kept(fields: &[String], key: &str) -> bool {
    key == "href" || fields.iter().any(|f| f == key)
}

/// Forwards everything to `inner` except structs and maps, whose fields it filters.
struct TopLevel<'a, S> {
    inner: S,
    fields: &'a [String],
}

macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {
        $(fn $name(self, $($arg: $ty),*) -> Result<Self::Ok, Self::Error> {
            self.inner.$name($($arg),*)
        })*
    };
}

impl<'a, S: Serializer> Serializer for TopLevel<'a, S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = S::SerializeSeq;
    type SerializeTuple = S::SerializeTuple;
    type SerializeTupleStruct = S::SerializeTupleStruct;
    type SerializeTupleVariant = S::SerializeTupleVariant;
    type SerializeMap = FilteredMap<'a, S::SerializeMap>;
    type SerializeStruct = FilteredStruct<'a, S::SerializeMap>;
    type SerializeStructVariant = S::SerializeStructVariant;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_f32(v: f32);
        serialize_f64(v: f64);
        serialize_char(v: char);
        serialize_str(v: &str);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.inner.serialize_some(value)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        // A newtype is its content in JSON: project the content.
        let _ = name;
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<S::SerializeSeq, S::Error> {
        self.inner.serialize_seq(len)
    }

    fn serialize_tuple(self, len: usize) -> Result<S::SerializeTuple, S::Error> {
        self.inner.serialize_tuple(len)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleStruct, S::Error> {
        self.inner.serialize_tuple_struct(name, len)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeTupleVariant, S::Error> {
        self.inner
            .serialize_tuple_variant(name, index, variant, len)
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        Ok(FilteredMap {
            inner: self.inner.serialize_map(None)?,
            fields: self.fields,
            skip_value: false,
        })
    }

    // A struct is written as a map (the same JSON object), so the kept count need not be known
    // up front.
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        Ok(FilteredStruct {
            inner: self.inner.serialize_map(None)?,
            fields: self.fields,
        })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<S::SerializeStructVariant, S::Error> {
        self.inner
            .serialize_struct_variant(name, index, variant, len)
    }
}

pub struct FilteredStruct<'a, M> {
    inner: M,
    fields: &'a [String],
}

impl<M: SerializeMap> SerializeStruct for FilteredStruct<'_, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), M::Error> {
        if kept(self.fields, key) {
            self.inner.serialize_entry(key, value)?;
        }
        Ok(())
    }

    fn end(self) -> Result<M::Ok, M::Error> {
        self.inner.end()
    }
}

/// A map (a struct with `#[serde(flatten)]` is written as one): keys are checked by their
/// string form.
pub struct FilteredMap<'a, M> {
    inner: M,
    fields: &'a [String],
    skip_value: bool,
}

impl<M: SerializeMap> SerializeMap for FilteredMap<'_, M> {
    type Ok = M::Ok;
    type Error = M::Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), M::Error> {
        let name = key.serialize(KeyName).ok();
        self.skip_value = !name.is_some_and(|n| kept(self.fields, &n));
        if self.skip_value {
            Ok(())
        } else {
            self.inner.serialize_key(key)
        }
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), M::Error> {
        if self.skip_value {
            Ok(())
        } else {
            self.inner.serialize_value(value)
        }
    }

    fn end(self) -> Result<M::Ok, M::Error> {
        self.inner.end()
    }
}

/// A map key's string form; anything but a string is not a field name.
struct KeyName;

#[derive(Debug)]
struct NotAName;

impl std::fmt::Display for NotAName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a field name")
    }
}

impl std::error::Error for NotAName {}

impl ser::Error for NotAName {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        NotAName
    }
}

impl Serializer for KeyName {
    type Ok = String;
    type Error = NotAName;
    type SerializeSeq = ser::Impossible<String, NotAName>;
    type SerializeTuple = ser::Impossible<String, NotAName>;
    type SerializeTupleStruct = ser::Impossible<String, NotAName>;
    type SerializeTupleVariant = ser::Impossible<String, NotAName>;
    type SerializeMap = ser::Impossible<String, NotAName>;
    type SerializeStruct = ser::Impossible<String, NotAName>;
    type SerializeStructVariant = ser::Impossible<String, NotAName>;

    fn serialize_str(self, v: &str) -> Result<String, NotAName> {
        Ok(v.to_string())
    }
    fn serialize_bool(self, _: bool) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_i8(self, _: i8) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_i16(self, _: i16) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_i32(self, _: i32) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_i64(self, _: i64) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_u8(self, _: u8) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_u16(self, _: u16) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_u32(self, _: u32) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_u64(self, _: u64) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_f32(self, _: f32) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_f64(self, _: f64) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_char(self, _: char) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_none(self) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_unit(self) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, NotAName> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, NotAName> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotAName> {
        Err(NotAName)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAName> {
        Err(NotAName)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAName> {
        Err(NotAName)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAName> {
        Err(NotAName)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAName> {
        Err(NotAName)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAName> {
        Err(NotAName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    #[derive(Serialize)]
    struct Inner {
        a: u32,
    }

    #[derive(Serialize)]
    struct Item {
        href: String,
        id: u32,
        name: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        nested: Inner,
        tags: Vec<&'static str>,
    }

    #[derive(Serialize)]
    struct Flat {
        kind: &'static str,
        #[serde(flatten)]
        item: Item,
    }

    fn item() -> Item {
        Item {
            href: "/api/v1/things/1".into(),
            id: 1,
            name: "one",
            size: None,
            nested: Inner { a: 7 },
            tags: vec!["x"],
        }
    }

    fn project(v: &impl Serialize, fields: &[&str]) -> Value {
        let fields: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
        serde_json::to_value(Projected {
            item: v,
            fields: &fields,
        })
        .unwrap()
    }

    #[test]
    fn keeps_href_and_the_named_top_level_fields() {
        assert_eq!(
            project(&item(), &["name", "nested"]),
            json!({"href": "/api/v1/things/1", "name": "one", "nested": {"a": 7}})
        );
        // Nested objects are whole; a skipped or unknown field is simply absent.
        assert_eq!(
            project(&item(), &["size", "tags"]),
            json!({"href": "/api/v1/things/1", "tags": ["x"]})
        );
    }

    #[test]
    fn flattened_items_are_maps_and_filter_the_same() {
        let flat = Flat {
            kind: "k",
            item: item(),
        };
        assert_eq!(
            project(&flat, &["kind", "id"]),
            json!({"kind": "k", "href": "/api/v1/things/1", "id": 1})
        );
    }

    #[test]
    fn matches_the_value_projection() {
        // The same answer as Query::apply's projection of the item as a Value.
        let q = crate::Query::parse(
            &crate::RawParams {
                fields: Some("id,tags".into()),
                ..Default::default()
            },
            &["href", "id", "name", "size", "nested", "tags"],
        )
        .unwrap();
        let via_value = q.apply(vec![serde_json::to_value(item()).unwrap()]);
        assert_eq!(via_value.items[0], project(&item(), &["id", "tags"]));
    }
}
