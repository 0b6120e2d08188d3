//! Geo queries over a `geo_point` field's column: `geo_distance` and `geo_bounding_box`.
//!
//! Points live in `_fields` as packed `i64`s (`geo.rs`), one column value per point. A query
//! reads the column of each segment: a point is first tested against the shape's bounding box
//! on its decoded coordinates (cheap comparisons), and only points inside the box pay for the
//! exact haversine of a distance query. Matches score a constant, as Elasticsearch's do.

use tantivy::columnar::{Column, DynamicColumn, NumericalType};
use tantivy::query::{
    BitSetDocSet, ConstScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::{DocId, DocSet, Score, SegmentReader};

use crate::geo::{DistanceType, GeoBox, GeoPoint, circle_bounds};

/// Name of the JSON fast field that holds exact values (see `schema.rs`).
const EXACT_FIELD: &str = "_fields";

/// The column of packed points of a `geo_point` field in one segment, if it has any.
pub(crate) fn open_geo_column(
    reader: &SegmentReader,
    path: &str,
) -> tantivy::Result<Option<Column<i64>>> {
    let handles = reader
        .fast_fields()
        .dynamic_column_handles(&format!("{EXACT_FIELD}.{path}"))?;
    for handle in handles {
        let column = handle.open()?;
        // A segment whose packed points are all non-negative may have been stored as `u64`.
        if column.is_numerical()
            && let Some(DynamicColumn::I64(column)) = column.coerce_numerical(NumericalType::I64)
        {
            return Ok(Some(column));
        }
    }
    Ok(None)
}

/// The region a geo query matches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GeoShape {
    /// Points within `meters` of `center`.
    Distance {
        center: GeoPoint,
        meters: f64,
        distance_type: DistanceType,
    },
    BoundingBox(GeoBox),
}

impl GeoShape {
    /// A box holding every point of the shape.
    fn bounds(&self) -> GeoBox {
        match self {
            GeoShape::Distance { center, meters, .. } => circle_bounds(*center, *meters),
            GeoShape::BoundingBox(bounds) => *bounds,
        }
    }

    fn contains(&self, bounds: &GeoBox, point: GeoPoint) -> bool {
        if !bounds.contains(point) {
            return false;
        }
        match self {
            GeoShape::Distance {
                center,
                meters,
                distance_type,
            } => distance_type.meters(*center, point) <= *meters,
            GeoShape::BoundingBox(_) => true,
        }
    }
}

/// Documents with at least one point of field `path` in `shape`, each scored 1.
#[derive(Debug, Clone)]
pub(crate) struct GeoShapeQuery {
    pub path: String,
    pub shape: GeoShape,
}

impl Query for GeoShapeQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for GeoShapeQuery {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut docs = tantivy::BitSet::with_max_value(reader.max_doc());
        if let Some(column) = open_geo_column(reader, &self.path)? {
            let bounds = self.shape.bounds();
            for doc in 0..reader.max_doc() {
                if column
                    .values_for_doc(doc)
                    .any(|packed| self.shape.contains(&bounds, GeoPoint::decode(packed)))
                {
                    docs.insert(doc);
                }
            }
        }
        Ok(Box::new(ConstScorer::new(BitSetDocSet::from(docs), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(
                "document does not match the geo query".into(),
            ));
        }
        Ok(Explanation::new(
            "geo query, constant score",
            scorer.score(),
        ))
    }
}
