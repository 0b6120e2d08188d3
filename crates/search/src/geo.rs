//! Geographic points as Elasticsearch's `geo_point` has them: every input form a document or a
//! query may use, the encoding the index stores, distances and their units, and the grid cells
//! of the geo aggregations (geohash and map tiles).
//!
//! A point is stored as Lucene stores it: latitude and longitude each quantized to 32 bits
//! (`encode_latitude`, `encode_longitude`: `floor(degrees / (range / 2^32))`), both packed in
//! one `i64` (latitude in the high half), so one column value holds one whole point and a
//! multi-valued field keeps its pairs. Decoded points are what Elasticsearch's doc values give
//! (`41.12` reads back as `41.119999992...`), so aggregations print the same numbers.

use serde_json::Value;

/// The earth's mean radius in meters, as Lucene's `SloppyMath` and Elasticsearch's
/// `GeoUtils.EARTH_MEAN_RADIUS` use it for arc and plane distances.
pub const EARTH_MEAN_RADIUS_M: f64 = 6_371_008.771_4;
/// The equator's length in meters (WGS 84 semi-major axis), for geohash precisions given as a
/// distance.
const EARTH_EQUATOR_M: f64 = 2.0 * std::f64::consts::PI * 6_378_137.0;
/// Half a meridian in meters (WGS 84 semi-minor axis), for the same.
const EARTH_POLAR_DISTANCE_M: f64 = std::f64::consts::PI * 6_356_752.314_245;
/// The longest geohash Elasticsearch makes: 12 characters, 60 bits.
pub const GEOHASH_PRECISION_MAX: usize = 12;
/// The deepest map-tile zoom of `geotile_grid`: 29, so `x` and `y` fit 29 bits each.
pub const GEOTILE_ZOOM_MAX: u32 = 29;
/// Latitudes map tiles reach (Web Mercator); points beyond fall in the edge row.
const GEOTILE_LATITUDE_MAX: f64 = 85.051_128_779_806_59;

const LAT_DECODE: f64 = 180.0 / 4_294_967_296.0;
const LON_DECODE: f64 = 360.0 / 4_294_967_296.0;
const GEOHASH_ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// A point in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

impl GeoPoint {
    pub fn new(lat: f64, lon: f64) -> GeoPoint {
        GeoPoint { lat, lon }
    }

    /// Refuses coordinates outside the globe with Elasticsearch's words (`for_what` names the
    /// field or query, as in `illegal latitude value [100.0] for location`).
    pub fn validate(self, for_what: &str) -> Result<GeoPoint, String> {
        if !(self.lat.is_finite() && (-90.0..=90.0).contains(&self.lat)) {
            return Err(format!(
                "illegal latitude value [{}] for {for_what}",
                java_double(self.lat)
            ));
        }
        if !(self.lon.is_finite() && (-180.0..=180.0).contains(&self.lon)) {
            return Err(format!(
                "illegal longitude value [{}] for {for_what}",
                java_double(self.lon)
            ));
        }
        Ok(self)
    }

    /// Wraps coordinates outside the globe onto it, as `validation_method: COERCE` does.
    pub fn normalized(self) -> GeoPoint {
        let mut lat = self.lat;
        let mut lon = self.lon;
        if !(-90.0..=90.0).contains(&lat) {
            // Over a pole: latitude folds back and longitude turns half around.
            let mut folded = (lat + 180.0).rem_euclid(360.0) - 180.0;
            if folded > 90.0 {
                folded = 180.0 - folded;
                lon += 180.0;
            } else if folded < -90.0 {
                folded = -180.0 - folded;
                lon += 180.0;
            }
            lat = folded;
        }
        if !(-180.0..=180.0).contains(&lon) {
            lon = (lon + 180.0).rem_euclid(360.0) - 180.0;
        }
        GeoPoint { lat, lon }
    }

    /// The packed form the index stores (see the module comment).
    pub fn encode(self) -> i64 {
        (i64::from(encode_latitude(self.lat)) << 32) | i64::from(encode_longitude(self.lon) as u32)
    }

    pub fn decode(encoded: i64) -> GeoPoint {
        let lat = (encoded >> 32) as i32;
        let lon = encoded as i32;
        GeoPoint {
            lat: f64::from(lat) * LAT_DECODE,
            lon: f64::from(lon) * LON_DECODE,
        }
    }

    /// The point as the index gives it back (quantized).
    pub fn quantized(self) -> GeoPoint {
        GeoPoint::decode(self.encode())
    }
}

/// Lucene's `GeoEncodingUtils.encodeLatitude`: 90° is the largest value, not one past it.
fn encode_latitude(lat: f64) -> i32 {
    let lat = lat.clamp(-90.0, 90.0);
    if lat == 90.0 {
        return i32::MAX;
    }
    (lat / LAT_DECODE).floor() as i32
}

fn encode_longitude(lon: f64) -> i32 {
    let lon = lon.clamp(-180.0, 180.0);
    if lon == 180.0 {
        return i32::MAX;
    }
    (lon / LON_DECODE).floor() as i32
}

/// A double as Java prints it in messages (`100.0`, not `100`).
fn java_double(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e7 {
        format!("{value:.1}")
    } else {
        value.to_string()
    }
}

/// Why a value is not a point, in Elasticsearch's words where it has them.
pub type ParseResult = Result<GeoPoint, String>;

/// Reads one point in any form Elasticsearch accepts: `{"lat","lon"}`, `"lat,lon"`, a geohash,
/// `[lon, lat]`, WKT `POINT (lon lat)` and GeoJSON `{"type": "Point", "coordinates": [lon, lat]}`.
/// A third (z) coordinate is accepted and dropped. The range is not checked here.
pub fn parse_point(value: &Value) -> ParseResult {
    match value {
        Value::Object(object) => {
            if object.contains_key("coordinates") || object.contains_key("type") {
                return parse_geojson(object);
            }
            let mut lat = None;
            let mut lon = None;
            for (key, item) in object {
                match key.as_str() {
                    "lat" => lat = Some(coordinate(item, "lat")?),
                    "lon" => lon = Some(coordinate(item, "lon")?),
                    "z" => {
                        coordinate(item, "z")?;
                    }
                    "geohash" => {
                        let Value::String(hash) = item else {
                            return Err("[geohash] must be a string".into());
                        };
                        return geohash_cell(hash).map(|cell| cell.center());
                    }
                    other => {
                        return Err(format!(
                            "field [{other}] not supported - must be one of: lon, lat, z, type, coordinates, geohash"
                        ));
                    }
                }
            }
            match (lat, lon) {
                (Some(lat), Some(lon)) => Ok(GeoPoint::new(lat, lon)),
                (None, _) => Err("field [lat] missing".into()),
                (_, None) => Err("field [lon] missing".into()),
            }
        }
        Value::Array(items) => parse_coordinates(items),
        Value::String(text) => parse_point_str(text),
        _ => Err(format!("unsupported symbol [{value}] in geo_point")),
    }
}

fn coordinate(value: &Value, name: &str) -> Result<f64, String> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    number.ok_or_else(|| format!("[{name}] must be a number"))
}

/// `[lon, lat]` or `[lon, lat, z]`.
fn parse_coordinates(items: &[Value]) -> ParseResult {
    let numbers: Vec<f64> = items
        .iter()
        .map(|item| item.as_f64().ok_or("numeric value expected".to_string()))
        .collect::<Result<_, _>>()?;
    match numbers.as_slice() {
        [lon, lat] | [lon, lat, _] => Ok(GeoPoint::new(*lat, *lon)),
        [] | [_] => Err("geo_point expected".into()),
        _ => Err("Exception parsing coordinates: found Z value [0.0] but [ignore_z_value] parameter is [false]".into()),
    }
}

fn parse_geojson(object: &serde_json::Map<String, Value>) -> ParseResult {
    match object.get("type").and_then(Value::as_str) {
        Some(kind) if kind.eq_ignore_ascii_case("point") => {}
        Some(kind) => {
            return Err(format!(
                "[type] for geo_point can only be 'Point', but found [{kind}]"
            ));
        }
        None => return Err("[type] for geo_point can only be 'Point'".into()),
    }
    match object.get("coordinates") {
        Some(Value::Array(items)) => parse_coordinates(items),
        _ => Err("[coordinates] must be specified".into()),
    }
}

/// `"lat,lon"`, `"lat,lon,z"`, WKT `POINT (lon lat)` or a geohash.
pub fn parse_point_str(text: &str) -> ParseResult {
    let trimmed = text.trim();
    if let Some(point) = parse_wkt_point(trimmed) {
        return point;
    }
    if trimmed.contains(',') {
        let parts: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        let number = |s: &str, what: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("[{what}] must be a number"))
        };
        return match parts.as_slice() {
            [lat, lon] | [lat, lon, _] => {
                Ok(GeoPoint::new(number(lat, "lat")?, number(lon, "lon")?))
            }
            _ => Err(format!(
                "failed to parse [{text}], expected 2 or 3 coordinates but found: [{}]",
                parts.len()
            )),
        };
    }
    geohash_cell(trimmed).map(|cell| cell.center())
}

/// `POINT (lon lat)`, any case; `None` when the text is not WKT at all.
fn parse_wkt_point(text: &str) -> Option<ParseResult> {
    let upper = text.get(..5)?;
    if !upper.eq_ignore_ascii_case("point") {
        return None;
    }
    let rest = text.get(5..)?.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .map(str::trim);
    let Some(inner) = inner else {
        return Some(Err(format!("expected '(' but found: {rest}")));
    };
    let numbers: Result<Vec<f64>, _> = inner.split_whitespace().map(str::parse::<f64>).collect();
    Some(match numbers.as_deref() {
        Ok([lon, lat]) | Ok([lon, lat, _]) => Ok(GeoPoint::new(*lat, *lon)),
        _ => Err(format!("failed to parse WKT point [{text}]")),
    })
}

/// A rectangle in degrees; `left > right` crosses the antimeridian.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    pub top: f64,
    pub bottom: f64,
    pub left: f64,
    pub right: f64,
}

impl GeoBox {
    pub fn center(self) -> GeoPoint {
        GeoPoint::new(
            (self.top + self.bottom) / 2.0,
            (self.left + self.right) / 2.0,
        )
    }

    pub fn contains(self, point: GeoPoint) -> bool {
        if point.lat < self.bottom || point.lat > self.top {
            return false;
        }
        if self.left <= self.right {
            point.lon >= self.left && point.lon <= self.right
        } else {
            point.lon >= self.left || point.lon <= self.right
        }
    }
}

/// The cell of a geohash (1 to 12 characters of its alphabet).
pub fn geohash_cell(hash: &str) -> Result<GeoBox, String> {
    if hash.is_empty() || hash.len() > GEOHASH_PRECISION_MAX {
        return Err(format!("unsupported symbol [{hash}] in geohash [{hash}]"));
    }
    let (mut lat_lo, mut lat_hi, mut lon_lo, mut lon_hi) = (-90.0, 90.0, -180.0, 180.0);
    let mut is_lon = true;
    for ch in hash.chars() {
        let lower = ch.to_ascii_lowercase();
        let Some(code) = GEOHASH_ALPHABET
            .iter()
            .position(|c| char::from(*c) == lower)
        else {
            return Err(format!("unsupported symbol [{ch}] in geohash [{hash}]"));
        };
        for bit in (0..5).rev() {
            let set = (code >> bit) & 1 == 1;
            let (lo, hi) = if is_lon {
                (&mut lon_lo, &mut lon_hi)
            } else {
                (&mut lat_lo, &mut lat_hi)
            };
            let mid = (*lo + *hi) / 2.0;
            if set {
                *lo = mid;
            } else {
                *hi = mid;
            }
            is_lon = !is_lon;
        }
    }
    Ok(GeoBox {
        top: lat_hi,
        bottom: lat_lo,
        left: lon_lo,
        right: lon_hi,
    })
}

/// The geohash of a point at `precision` characters (1 to 12), computed as Elasticsearch does
/// from the quantized coordinates: the interleaved bits of both (longitude first), five per
/// character.
pub fn geohash(point: GeoPoint, precision: usize) -> String {
    let precision = precision.clamp(1, GEOHASH_PRECISION_MAX);
    geohash_text(geohash_id(point, precision), precision)
}

/// The geohash of a point as a number: its `5 × precision` bits, so that numbers order as
/// the hashes do.
pub fn geohash_id(point: GeoPoint, precision: usize) -> u64 {
    let lat = (encode_latitude(point.lat) as u32) ^ 0x8000_0000;
    let lon = (encode_longitude(point.lon) as u32) ^ 0x8000_0000;
    let precision = precision.clamp(1, GEOHASH_PRECISION_MAX) as u32;
    interleave(lon, lat) >> (64 - 5 * precision)
}

/// The text of a geohash from [`geohash_id`].
pub fn geohash_text(id: u64, precision: usize) -> String {
    let precision = precision.clamp(1, GEOHASH_PRECISION_MAX);
    (0..precision)
        .map(|i| {
            let code = (id >> (5 * (precision - 1 - i))) & 0x1f;
            char::from(GEOHASH_ALPHABET.get(code as usize).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// Bits of `high` at odd positions, `low` at even, most significant first.
fn interleave(high: u32, low: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut x = u64::from(v);
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        x = (x | (x << 2)) & 0x3333_3333_3333_3333;
        x = (x | (x << 1)) & 0x5555_5555_5555_5555;
        x
    }
    (spread(high) << 1) | spread(low)
}

/// The geohash length whose cells are no larger than `meters` across, as Elasticsearch's
/// `GeoUtils.geoHashLevelsForPrecision` (capped at 12).
pub fn geohash_precision_for_distance(meters: f64) -> usize {
    if meters <= 0.0 || !meters.is_finite() {
        return GEOHASH_PRECISION_MAX;
    }
    let ratio = 1.0 + (EARTH_POLAR_DISTANCE_M / EARTH_EQUATOR_M);
    let width = (meters * meters / (ratio * ratio)).sqrt();
    let part = (EARTH_EQUATOR_M / width).ceil();
    let bits = part.log2().ceil().max(0.0) as usize;
    let full = bits / 5;
    let left = bits - full * 5;
    let even = full + usize::from(left > 0);
    let odd = full + usize::from(left > 3);
    (even + odd).clamp(1, GEOHASH_PRECISION_MAX)
}

/// The map tile (`zoom`, `x`, `y`) holding a point, as Elasticsearch's `GeoTileUtils`.
pub fn geotile(point: GeoPoint, zoom: u32) -> (u32, u32, u32) {
    let zoom = zoom.min(GEOTILE_ZOOM_MAX);
    let tiles = f64::from(1u32 << zoom);
    let max_index = (1u32 << zoom) - 1;
    let x = ((point.lon + 180.0) / 360.0 * tiles).floor();
    let lat = point.lat.clamp(-GEOTILE_LATITUDE_MAX, GEOTILE_LATITUDE_MAX);
    let sin = lat.to_radians().sin();
    let y =
        ((0.5 - ((1.0 + sin) / (1.0 - sin)).ln() / (4.0 * std::f64::consts::PI)) * tiles).floor();
    let clip = |v: f64| {
        if v < 0.0 {
            0
        } else if v >= tiles {
            max_index
        } else {
            v as u32
        }
    };
    (zoom, clip(x), clip(y))
}

/// A map tile as one integer, as Elasticsearch's `GeoTileUtils.longEncode`: `zoom` in the top
/// bits, then `x`, then `y` (29 bits each), so tiles of one zoom order by `x`, then `y`.
pub fn geotile_encode(zoom: u32, x: u32, y: u32) -> i64 {
    let mask = (1i64 << GEOTILE_ZOOM_MAX) - 1;
    (i64::from(zoom) << 58) | ((i64::from(x) & mask) << 29) | (i64::from(y) & mask)
}

/// The `zoom/x/y` text of an encoded tile (`geotile_encode`).
pub fn geotile_text(encoded: i64) -> String {
    let mask = (1i64 << GEOTILE_ZOOM_MAX) - 1;
    format!(
        "{}/{}/{}",
        encoded >> 58,
        (encoded >> 29) & mask,
        encoded & mask
    )
}

/// Reads a `zoom/x/y` tile key into its encoded form; `None` unless it names a tile.
pub fn geotile_parse(text: &str) -> Option<i64> {
    let mut parts = text.split('/').map(|p| p.trim().parse::<u32>().ok());
    let (Some(Some(zoom)), Some(Some(x)), Some(Some(y)), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if zoom > GEOTILE_ZOOM_MAX || x >= (1u32 << zoom) || y >= (1u32 << zoom) {
        return None;
    }
    Some(geotile_encode(zoom, x, y))
}

/// The rectangle of a map tile.
pub fn geotile_box(zoom: u32, x: u32, y: u32) -> GeoBox {
    let tiles = f64::from(1u32 << zoom.min(GEOTILE_ZOOM_MAX));
    let lon = |x: f64| x / tiles * 360.0 - 180.0;
    let lat = |y: f64| {
        let n = std::f64::consts::PI - 2.0 * std::f64::consts::PI * y / tiles;
        n.sinh().atan().to_degrees()
    };
    GeoBox {
        top: lat(f64::from(y)),
        bottom: lat(f64::from(y) + 1.0),
        left: lon(f64::from(x)),
        right: lon(f64::from(x) + 1.0),
    }
}

/// How a distance is measured: along the great circle (haversine) or on a flat projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DistanceType {
    #[default]
    Arc,
    Plane,
}

impl DistanceType {
    pub fn parse(name: &str) -> Option<DistanceType> {
        match name.to_ascii_lowercase().as_str() {
            "arc" => Some(DistanceType::Arc),
            "plane" => Some(DistanceType::Plane),
            _ => None,
        }
    }

    /// Meters between two points.
    pub fn meters(self, a: GeoPoint, b: GeoPoint) -> f64 {
        match self {
            DistanceType::Arc => haversine_meters(a, b),
            DistanceType::Plane => {
                let x = (b.lon - a.lon).to_radians() * ((a.lat + b.lat) / 2.0).to_radians().cos();
                let y = (b.lat - a.lat).to_radians();
                (x * x + y * y).sqrt() * EARTH_MEAN_RADIUS_M
            }
        }
    }
}

/// The great-circle distance as Lucene's `SloppyMath.haversinMeters`.
pub fn haversine_meters(a: GeoPoint, b: GeoPoint) -> f64 {
    let x1 = a.lat.to_radians();
    let x2 = b.lat.to_radians();
    let h1 = 1.0 - (x1 - x2).cos();
    let h2 = 1.0 - (a.lon - b.lon).to_radians().cos();
    let h = h1 + x1.cos() * x2.cos() * h2;
    EARTH_MEAN_RADIUS_M * 2.0 * (h * 0.5).sqrt().min(1.0).asin()
}

/// Elasticsearch's distance units, with their meters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DistanceUnit {
    pub meters: f64,
}

impl DistanceUnit {
    pub const METERS: DistanceUnit = DistanceUnit { meters: 1.0 };

    /// A unit by any name Elasticsearch knows (`km`, `kilometers`, `mi`, `NM`, …).
    pub fn parse(name: &str) -> Option<DistanceUnit> {
        let meters = match name {
            "in" | "inch" => 0.0254,
            "yd" | "yards" => 0.9144,
            "ft" | "feet" => 0.3048,
            "km" | "kilometers" => 1000.0,
            "NM" | "nmi" | "nauticalmiles" => 1852.0,
            "mm" | "millimeters" => 0.001,
            "cm" | "centimeters" => 0.01,
            "mi" | "miles" => 1609.344,
            "m" | "meters" => 1.0,
            _ => return None,
        };
        Some(DistanceUnit { meters })
    }

    /// A value in this unit from meters.
    pub fn from_meters(self, meters: f64) -> f64 {
        meters / self.meters
    }
}

/// A distance such as `12km`, `200 m`, `1.5mi` or a bare number (in `default_unit`), in meters.
pub fn parse_distance(value: &Value, default_unit: DistanceUnit) -> Result<f64, String> {
    let meters = match value {
        Value::Number(n) => n.as_f64().map(|v| v * default_unit.meters),
        Value::String(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| c.is_ascii_alphabetic())
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let unit = if unit.is_empty() {
                Some(default_unit)
            } else {
                DistanceUnit::parse(unit.trim())
            };
            match (number.trim().parse::<f64>(), unit) {
                (Ok(number), Some(unit)) => Some(number * unit.meters),
                _ => None,
            }
        }
        _ => None,
    };
    meters
        .filter(|m| m.is_finite())
        .ok_or_else(|| format!("failed to parse distance [{}]", display(value)))
}

fn display(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads a bounding box: `top_left`/`bottom_right`, `top_right`/`bottom_left`, the four edges
/// `top`/`left`/`bottom`/`right`, or `wkt: "BBOX (minLon, maxLon, maxLat, minLat)"`. Geohash
/// corners stand for the matching corner of their cell.
pub fn parse_bounding_box(object: &serde_json::Map<String, Value>) -> Result<GeoBox, String> {
    let mut top = None;
    let mut bottom = None;
    let mut left = None;
    let mut right = None;
    for (key, value) in object {
        match key.as_str() {
            "top_left" | "bottom_right" | "top_right" | "bottom_left" => {
                let (is_top, is_left) = match key.as_str() {
                    "top_left" => (true, true),
                    "bottom_right" => (false, false),
                    "top_right" => (true, false),
                    _ => (false, true),
                };
                let point = match value {
                    Value::String(s) if !s.contains(',') && parse_wkt_point(s.trim()).is_none() => {
                        let cell = geohash_cell(s.trim())?;
                        GeoPoint::new(
                            if is_top { cell.top } else { cell.bottom },
                            if is_left { cell.left } else { cell.right },
                        )
                    }
                    other => parse_point(other)?,
                };
                if is_top {
                    top = Some(point.lat);
                } else {
                    bottom = Some(point.lat);
                }
                if is_left {
                    left = Some(point.lon);
                } else {
                    right = Some(point.lon);
                }
            }
            "top" => top = Some(coordinate(value, "top")?),
            "bottom" => bottom = Some(coordinate(value, "bottom")?),
            "left" => left = Some(coordinate(value, "left")?),
            "right" => right = Some(coordinate(value, "right")?),
            "wkt" => {
                let text = value.as_str().ok_or("[wkt] must be a string")?;
                let parsed = parse_wkt_bbox(text)?;
                top = Some(parsed.top);
                bottom = Some(parsed.bottom);
                left = Some(parsed.left);
                right = Some(parsed.right);
            }
            other => {
                return Err(format!(
                    "failed to parse bounding box. unexpected field [{other}]"
                ));
            }
        }
    }
    match (top, bottom, left, right) {
        (Some(top), Some(bottom), Some(left), Some(right)) => {
            if top < bottom {
                return Err(format!(
                    "top is below bottom corner: {} vs. {}",
                    java_double(top),
                    java_double(bottom)
                ));
            }
            Ok(GeoBox {
                top,
                bottom,
                left,
                right,
            })
        }
        _ => Err("failed to parse bounding box. missing corners or edges".into()),
    }
}

/// `BBOX (minLon, maxLon, maxLat, minLat)`.
fn parse_wkt_bbox(text: &str) -> Result<GeoBox, String> {
    let trimmed = text.trim();
    let refuse = || format!("failed to parse WKT bounding box [{text}]");
    let head = trimmed.get(..4).ok_or_else(refuse)?;
    if !head.eq_ignore_ascii_case("bbox") {
        return Err(refuse());
    }
    let inner = trimmed
        .get(4..)
        .map(str::trim)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(refuse)?;
    let numbers: Vec<f64> = inner
        .split(',')
        .map(|part| part.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| refuse())?;
    match numbers.as_slice() {
        [left, right, top, bottom] => Ok(GeoBox {
            top: *top,
            bottom: *bottom,
            left: *left,
            right: *right,
        }),
        _ => Err(refuse()),
    }
}

/// The running extremes of `geo_bounds`, as Elasticsearch's aggregator keeps them: longitudes
/// east and west of Greenwich apart, so that a box may wrap the antimeridian when narrower.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundsAcc {
    pub top: f64,
    pub bottom: f64,
    pub pos_left: f64,
    pub pos_right: f64,
    pub neg_left: f64,
    pub neg_right: f64,
}

impl Default for BoundsAcc {
    fn default() -> BoundsAcc {
        BoundsAcc {
            top: f64::NEG_INFINITY,
            bottom: f64::INFINITY,
            pos_left: f64::INFINITY,
            pos_right: f64::NEG_INFINITY,
            neg_left: f64::INFINITY,
            neg_right: f64::NEG_INFINITY,
        }
    }
}

impl BoundsAcc {
    pub fn add(&mut self, point: GeoPoint) {
        self.top = self.top.max(point.lat);
        self.bottom = self.bottom.min(point.lat);
        if point.lon >= 0.0 {
            self.pos_left = self.pos_left.min(point.lon);
            self.pos_right = self.pos_right.max(point.lon);
        } else {
            self.neg_left = self.neg_left.min(point.lon);
            self.neg_right = self.neg_right.max(point.lon);
        }
    }

    pub fn merge(&mut self, other: &BoundsAcc) {
        self.top = self.top.max(other.top);
        self.bottom = self.bottom.min(other.bottom);
        self.pos_left = self.pos_left.min(other.pos_left);
        self.pos_right = self.pos_right.max(other.pos_right);
        self.neg_left = self.neg_left.min(other.neg_left);
        self.neg_right = self.neg_right.max(other.neg_right);
    }

    /// The box, `None` without points; with `wrap_longitude` the narrower of the box over
    /// Greenwich and the box over the antimeridian.
    pub fn bounds(&self, wrap_longitude: bool) -> Option<GeoBox> {
        if self.top.is_infinite() {
            return None;
        }
        let (left, right) = if self.pos_left.is_infinite() {
            (self.neg_left, self.neg_right)
        } else if self.neg_left.is_infinite() {
            (self.pos_left, self.pos_right)
        } else if wrap_longitude {
            let unwrapped = self.pos_right - self.neg_left;
            let wrapped = (180.0 - self.pos_left) - (-180.0 - self.neg_right);
            if unwrapped <= wrapped {
                (self.neg_left, self.pos_right)
            } else {
                (self.pos_left, self.neg_right)
            }
        } else {
            (self.neg_left, self.pos_right)
        };
        Some(GeoBox {
            top: self.top,
            bottom: self.bottom,
            left,
            right,
        })
    }
}

/// The smallest box around a point and a radius, for the prefilter of distance queries: a
/// superset of the circle (whole longitude band near the poles or when it crosses them).
pub fn circle_bounds(center: GeoPoint, meters: f64) -> GeoBox {
    let angular = meters / EARTH_MEAN_RADIUS_M;
    let delta_lat = angular.to_degrees();
    let top = center.lat + delta_lat;
    let bottom = center.lat - delta_lat;
    if top >= 90.0 || bottom <= -90.0 || angular >= std::f64::consts::PI {
        return GeoBox {
            top: top.min(90.0),
            bottom: bottom.max(-90.0),
            left: -180.0,
            right: 180.0,
        };
    }
    let ratio = angular.sin() / center.lat.to_radians().cos();
    if ratio >= 1.0 {
        return GeoBox {
            top,
            bottom,
            left: -180.0,
            right: 180.0,
        };
    }
    let delta_lon = ratio.asin().to_degrees();
    let wrap = |lon: f64| {
        if lon < -180.0 {
            lon + 360.0
        } else if lon > 180.0 {
            lon - 360.0
        } else {
            lon
        }
    };
    GeoBox {
        top,
        bottom,
        left: wrap(center.lon - delta_lon),
        right: wrap(center.lon + delta_lon),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn every_input_form_reads_the_same_point() {
        let expected = GeoPoint::new(41.12, -71.34);
        for value in [
            json!({"lat": 41.12, "lon": -71.34}),
            json!({"lat": "41.12", "lon": "-71.34"}),
            json!("41.12,-71.34"),
            json!(" 41.12 , -71.34 "),
            json!([-71.34, 41.12]),
            json!("POINT (-71.34 41.12)"),
            json!("point(-71.34 41.12)"),
            json!({"type": "Point", "coordinates": [-71.34, 41.12]}),
            json!([-71.34, 41.12, 10.0]),
        ] {
            assert_eq!(parse_point(&value).unwrap(), expected, "{value}");
        }
        let from_hash = parse_point(&json!("drm3btev3e86")).unwrap();
        assert!(close(from_hash.lat, 41.12, 1e-6) && close(from_hash.lon, -71.34, 1e-6));
        for bad in [
            json!({"lat": 1}),
            json!({"lat": 1, "lon": 2, "x": 3}),
            json!("not a point!"),
            json!([1]),
            json!({"type": "LineString", "coordinates": [[1, 2], [3, 4]]}),
            json!(true),
        ] {
            assert!(parse_point(&bad).is_err(), "{bad}");
        }
        assert_eq!(
            GeoPoint::new(100.0, 0.0).validate("location").unwrap_err(),
            "illegal latitude value [100.0] for location"
        );
    }

    #[test]
    fn encoding_matches_lucene_quantization() {
        let point = GeoPoint::new(41.12, -71.34);
        let decoded = GeoPoint::decode(point.encode());
        // Lucene floors to the grid: the decoded value is the grid line at or below the value.
        assert!(
            decoded.lat <= 41.12 && 41.12 - decoded.lat < LAT_DECODE,
            "{decoded:?}"
        );
        assert!(
            decoded.lon <= -71.34 && -71.34 - decoded.lon < LON_DECODE,
            "{decoded:?}"
        );
        assert!(
            close(decoded.lon, -71.340_000_042_691_83, 1e-12),
            "{decoded:?}"
        );
        assert_eq!(GeoPoint::decode(decoded.encode()), decoded);
        let corner = GeoPoint::decode(GeoPoint::new(90.0, 180.0).encode());
        assert!(corner.lat < 90.0 && corner.lat > 89.999_999);
        let south = GeoPoint::decode(GeoPoint::new(-90.0, -180.0).encode());
        assert_eq!((south.lat, south.lon), (-90.0, -180.0));
    }

    #[test]
    fn geohashes_of_known_points() {
        // Wikipedia's example point, and the cells of Elasticsearch's geohash_grid docs.
        assert_eq!(
            geohash(GeoPoint::new(57.64911, 10.40744), 11),
            "u4pruydqqvj"
        );
        assert_eq!(geohash(GeoPoint::new(52.374081, 4.912350), 3), "u17");
        assert_eq!(geohash(GeoPoint::new(48.861111, 2.336389), 3), "u09");
        assert_eq!(geohash(GeoPoint::new(51.222900, 4.405200), 3), "u15");
        let cell = geohash_cell("u17").unwrap();
        assert!(cell.contains(GeoPoint::new(52.374081, 4.912350)));
        assert!(geohash_cell("u1a").is_err());
        // 1 km: 16 bits of longitude, 7 characters (153 m cells), by Elasticsearch's formula.
        assert_eq!(geohash_precision_for_distance(1000.0), 7);
        assert_eq!(geohash_precision_for_distance(1_000_000.0), 3);
        assert_eq!(geohash_precision_for_distance(0.0), 12);
        let id = geohash_id(GeoPoint::new(57.64911, 10.40744), 5);
        assert_eq!(geohash_text(id, 5), "u4pru");
        assert!(
            geohash_id(GeoPoint::new(0.0, -100.0), 2) < geohash_id(GeoPoint::new(0.0, 100.0), 2)
        );
    }

    #[test]
    fn geotiles_of_known_points() {
        assert_eq!(geotile(GeoPoint::new(0.0, 0.0), 0), (0, 0, 0));
        // Amsterdam's tile at zoom 8 is 131/84 (the slippy-map tile of OpenStreetMap).
        assert_eq!(geotile(GeoPoint::new(52.374081, 4.912350), 8), (8, 131, 84));
        assert_eq!(geotile(GeoPoint::new(89.9, 180.0), 2), (2, 3, 0));
        let tile = geotile_box(8, 131, 84);
        assert!(tile.contains(GeoPoint::new(52.374081, 4.912350)));
    }

    #[test]
    fn encoded_tiles_order_by_x_then_y_and_read_back() {
        // Elasticsearch's `longEncode` of 8/131/84.
        assert_eq!(geotile_encode(8, 131, 84), (8 << 58) | (131 << 29) | 84);
        assert!(geotile_encode(4, 4, 9) < geotile_encode(4, 14, 6));
        assert!(geotile_encode(4, 14, 6) < geotile_encode(4, 14, 9));
        for (zoom, x, y) in [(0, 0, 0), (8, 131, 84), (29, (1 << 29) - 1, 7)] {
            let encoded = geotile_encode(zoom, x, y);
            let text = geotile_text(encoded);
            assert_eq!(text, format!("{zoom}/{x}/{y}"));
            assert_eq!(geotile_parse(&text), Some(encoded));
        }
        for bad in [
            "8/131",
            "8/131/84/1",
            "8/256/0",
            "30/0/0",
            "a/b/c",
            "8/-1/0",
            "",
        ] {
            assert_eq!(geotile_parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn distances_and_units() {
        let amsterdam = GeoPoint::new(52.3760, 4.894);
        let antwerp = GeoPoint::new(51.2229, 4.4052);
        let meters = haversine_meters(amsterdam, antwerp);
        assert!(close(meters, 132_000.0, 1_000.0), "{meters}");
        let plane = DistanceType::Plane.meters(amsterdam, antwerp);
        assert!(close(plane, meters, 200.0));
        let unit = |s: &str| DistanceUnit::parse(s).unwrap();
        assert_eq!(
            parse_distance(&json!("12km"), DistanceUnit::METERS),
            Ok(12_000.0)
        );
        assert_eq!(
            parse_distance(&json!("1mi"), DistanceUnit::METERS),
            Ok(1_609.344)
        );
        assert_eq!(
            parse_distance(&json!("2 NM"), DistanceUnit::METERS),
            Ok(3_704.0)
        );
        assert_eq!(parse_distance(&json!(5), unit("km")), Ok(5_000.0));
        assert_eq!(
            parse_distance(&json!("100"), DistanceUnit::METERS),
            Ok(100.0)
        );
        assert!(parse_distance(&json!("12 parsecs"), DistanceUnit::METERS).is_err());
        assert!(close(unit("yd").from_meters(0.9144), 1.0, 1e-12));
    }

    #[test]
    fn bounding_boxes_in_every_form() {
        let expected = GeoBox {
            top: 40.73,
            bottom: 40.01,
            left: -74.1,
            right: -71.12,
        };
        let parse = |v: Value| parse_bounding_box(v.as_object().unwrap());
        assert_eq!(
            parse(
                json!({"top_left": {"lat": 40.73, "lon": -74.1}, "bottom_right": {"lat": 40.01, "lon": -71.12}})
            ),
            Ok(expected)
        );
        assert_eq!(
            parse(json!({"top": 40.73, "left": -74.1, "bottom": 40.01, "right": -71.12})),
            Ok(expected)
        );
        assert_eq!(
            parse(json!({"wkt": "BBOX (-74.1, -71.12, 40.73, 40.01)"})),
            Ok(expected)
        );
        assert_eq!(
            parse(json!({"top_left": [-74.1, 40.73], "bottom_right": "40.01,-71.12"})),
            Ok(expected)
        );
        let hashed =
            parse(json!({"top_left": "dr5r9ydj2y73", "bottom_right": "drj7teegpus6"})).unwrap();
        assert!(close(hashed.top, 40.73, 1e-6) && close(hashed.right, -71.12, 1e-6));
        assert!(parse(json!({"top": 1, "left": 2})).is_err());
        assert!(parse(json!({"top": 1, "bottom": 2, "left": 0, "right": 1})).is_err());
        let crossing = GeoBox {
            top: 10.0,
            bottom: -10.0,
            left: 170.0,
            right: -170.0,
        };
        assert!(crossing.contains(GeoPoint::new(0.0, 179.0)));
        assert!(crossing.contains(GeoPoint::new(0.0, -175.0)));
        assert!(!crossing.contains(GeoPoint::new(0.0, 0.0)));
    }

    #[test]
    fn bounds_wrap_the_antimeridian_when_narrower() {
        let mut acc = BoundsAcc::default();
        assert_eq!(acc.bounds(true), None);
        acc.add(GeoPoint::new(10.0, 170.0));
        acc.add(GeoPoint::new(-5.0, -175.0));
        let wrapped = acc.bounds(true).unwrap();
        assert_eq!((wrapped.left, wrapped.right), (170.0, -175.0));
        let plain = acc.bounds(false).unwrap();
        assert_eq!(
            (plain.left, plain.right, plain.top, plain.bottom),
            (-175.0, 170.0, 10.0, -5.0)
        );
    }

    #[test]
    fn circle_bounds_hold_the_circle() {
        let center = GeoPoint::new(40.0, -70.0);
        let bounds = circle_bounds(center, 200_000.0);
        for bearing in 0..36 {
            let angle = f64::from(bearing) * 10.0_f64.to_radians();
            // A point just inside the circle in each direction.
            let d = 199_000.0 / EARTH_MEAN_RADIUS_M;
            let lat1 = center.lat.to_radians();
            let lat2 = (lat1.sin() * d.cos() + lat1.cos() * d.sin() * angle.cos()).asin();
            let lon2 = center.lon.to_radians()
                + (angle.sin() * d.sin() * lat1.cos()).atan2(d.cos() - lat1.sin() * lat2.sin());
            let point = GeoPoint::new(lat2.to_degrees(), lon2.to_degrees());
            assert!(haversine_meters(center, point) < 200_000.0);
            assert!(bounds.contains(point), "{point:?} outside {bounds:?}");
        }
        let coerced = GeoPoint::new(0.0, 190.0).normalized();
        assert!(close(coerced.lon, -170.0, 1e-9));
    }
}
