//! Typed access to the columns of a result batch by name, for the report modules that turn
//! their SQL results into rows.

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::DataType;

use crate::{Error, Result};

/// A result batch whose columns are read by name, cast to the type the caller expects.
pub(crate) struct Columns<'a>(pub(crate) &'a RecordBatch);

impl Columns<'_> {
    fn cast(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let c = self
            .0
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("a report query lost its {name} column")))?;
        arrow::compute::cast(c, to).map_err(|e| Error::Internal(e.to_string()))
    }

    /// The column as integers.
    pub(crate) fn i64(&self, name: &str) -> Result<Int64Array> {
        let c = self.cast(name, &DataType::Int64)?;
        c.as_any()
            .downcast_ref::<Int64Array>()
            .cloned()
            .ok_or_else(|| Error::Internal(format!("{name} is not an integer")))
    }

    /// The column as floats.
    pub(crate) fn f64(&self, name: &str) -> Result<Float64Array> {
        let c = self.cast(name, &DataType::Float64)?;
        c.as_any()
            .downcast_ref::<Float64Array>()
            .cloned()
            .ok_or_else(|| Error::Internal(format!("{name} is not a number")))
    }

    /// The column as text.
    pub(crate) fn str(&self, name: &str) -> Result<StringArray> {
        let c = self.cast(name, &DataType::Utf8)?;
        c.as_any()
            .downcast_ref::<StringArray>()
            .cloned()
            .ok_or_else(|| Error::Internal(format!("{name} is not text")))
    }
}
