"""Every conformance class declared in /conformance is covered by tests that exist."""

from __future__ import annotations

import importlib

from geo.ogc.conformance import CONFORMANCE

_F1 = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
_F2 = "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/"
_F3 = "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/"
_C = "http://www.opengis.net/spec/cql2/1.0/conf/"
_F4 = "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/"
_F5 = "http://www.opengis.net/spec/ogcapi-common-3/1.0/conf/"

#: Conformance class → tests (module.function) exercising it.
COVERAGE: dict[str, list[str]] = {
    _F1 + "core": [
        "test_ogc_core.test_landing_page_links",
        "test_ogc_core.test_collections_list_the_territory",
        "test_ogc_core.test_items_paging_links_and_counts",
        "test_ogc_core.test_bbox_selects_milano",
        "test_ogc_core.test_one_item",
        "test_ogc_core.test_unknown_parameter_is_400",
        "test_ogc_clients.test_ogrinfo_lists_collections_and_reads_133_comuni",
    ],
    _F1 + "geojson": [
        "test_ogc_core.test_one_item",
        "test_ogc_clients.test_owslib_collections_items_filter_item",
    ],
    _F1 + "html": ["test_ogc_core.test_html_pages", "test_ogc_core.test_accept_header_negotiation"],
    _F1 + "oas30": [
        "test_ogc_core.test_api_is_openapi_30_with_ogc_media_types",
        "test_ogc_clients.test_schemathesis_no_server_error_and_answers_as_documented",
    ],
    _F2 + "crs": [
        "test_ogc_crs.test_output_crs_places_the_duomo_inside_milano",
        "test_ogc_crs.test_bbox_crs_round_trip",
        "test_ogc_crs.test_epsg_4326_is_latitude_first",
    ],
    _F3 + "queryables": ["test_ogc_filter.test_queryables_json_schema"],
    _F3 + "queryables-query-parameters": ["test_ogc_filter.test_property_filters"],
    _F3 + "filter": [
        "test_ogc_filter.test_basic_cql2_text",
        "test_ogc_filter.test_filter_errors_say_what_and_where",
        "test_ogc_filter.test_filter_lang_validated",
    ],
    _F3 + "features-filter": [
        "test_ogc_filter.test_basic_cql2_text",
        "test_ogc_clients.test_owslib_collections_items_filter_item",
    ],
    _C + "cql2-text": ["test_ogc_filter.test_basic_cql2_text"],
    _C + "cql2-json": [
        "test_ogc_filter.test_basic_cql2_json",
        "test_ogc_filter.test_cql2_json_detected_without_filter_lang",
    ],
    _C + "basic-cql2": [
        "test_ogc_filter.test_basic_cql2_text",
        "test_ogc_filter.test_basic_cql2_json",
    ],
    _C + "advanced-comparison-operators": [
        "test_ogc_filter.test_advanced_comparison_like_in_between"
    ],
    _C + "case-insensitive-comparison": ["test_ogc_filter.test_case_insensitive_comparison"],
    _C + "accent-insensitive-comparison": ["test_ogc_filter.test_accent_insensitive_comparison"],
    _C + "basic-spatial-functions": [
        "test_ogc_filter.test_basic_spatial_s_intersects_point_and_bbox"
    ],
    _C + "basic-spatial-operators": [  # the drafts' name of basic-spatial-functions
        "test_ogc_filter.test_basic_spatial_s_intersects_point_and_bbox"
    ],
    _C + "basic-spatial-functions-plus": [
        "test_ogc_filter.test_basic_spatial_plus_polygon_and_filter_crs"
    ],
    _C + "spatial-functions": ["test_ogc_filter.test_spatial_functions"],
    _C + "property-property": ["test_ogc_filter.test_property_property_and_arithmetic"],
    _C + "arithmetic": ["test_ogc_filter.test_property_property_and_arithmetic"],
    _C + "array-functions": ["test_ogc_standards.test_array_functions_one_filter_for_a_mission"],
    _F5 + "schemas": [
        "test_ogc_standards.test_part5_schema_roles_types_and_links",
        "test_ogc_standards.test_part5_schema_of_the_territory_and_html",
    ],
    "http://www.opengis.net/spec/ogcapi-features-5/1.0/conf/schemas": [
        "test_ogc_standards.test_part5_schema_roles_types_and_links",
        "test_ogc_standards.test_part5_schema_of_the_territory_and_html",
    ],
    _F5 + "advanced-property-roles": [
        "test_ogc_standards.test_part5_schema_roles_types_and_links",
        "test_ogc_standards.test_territory_one_geometry_type_and_valid",
    ],
    _F5 + "returnables-and-receivables": [
        "test_ogc_standards.test_part5_schema_roles_types_and_links",
        "test_ogc_desktop_clients.test_gdal_types_fields_from_the_schema",
    ],
    _F5 + "queryables": [
        "test_ogc_standards.test_part5_schema_roles_types_and_links",
        "test_ogc_filter.test_queryables_json_schema",
    ],
    _F5 + "sortables": ["test_ogc_standards.test_part5_schema_roles_types_and_links"],
    _F4 + "create-replace-delete": [
        "test_ogc_desktop_clients.test_owslib_creates_updates_deletes_and_stale_if_match_is_412",
    ],
    _F4 + "update": [
        "test_ogc_desktop_clients.test_owslib_creates_updates_deletes_and_stale_if_match_is_412",
    ],
    _F4 + "optimistic-locking-etags": [
        "test_ogc_desktop_clients.test_owslib_creates_updates_deletes_and_stale_if_match_is_412",
    ],
    _F4 + "features": [
        "test_ogc_desktop_clients.test_owslib_creates_updates_deletes_and_stale_if_match_is_412",
        "test_ogc_desktop_clients.test_options_answers_allow_by_caller",
    ],
}


#: OGC API – Tiles and TMS 2.0 (geo.ogc.tiles).
_T = "http://www.opengis.net/spec/ogcapi-tiles-1/1.0/conf/"
_TMS = "http://www.opengis.net/spec/tms/2.0/conf/"
TILES_COVERAGE: dict[str, list[str]] = {
    _T + "core": [
        "test_tiles.test_tile_holds_what_a_bbox_query_of_its_area_returns",
        "test_tiles.test_empty_bad_and_out_of_range_tiles",
        "test_tiles.test_etag_and_304",
    ],
    _T + "tileset": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
    _T + "tilesets-list": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
    _T + "geodata-tilesets": [
        "test_tiles.test_tile_matrix_sets_and_tilesets",
        "test_tiles.test_intervention_tiles_change_with_the_data",
    ],
    _T + "mvt": [
        "test_tiles.test_tile_properties_and_geometry",
        "test_tiles.test_gdal_reads_a_tile",
    ],
    _T + "oas30": ["test_tiles.test_openapi_documents_the_tiles"],
    _TMS + "tilematrixset": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
    _TMS + "json-tilematrixset": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
    _TMS + "tilesetmetadata": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
    _TMS + "json-tilesetmetadata": ["test_tiles.test_tile_matrix_sets_and_tilesets"],
}
COVERAGE.update(TILES_COVERAGE)


def test_every_declared_class_has_existing_tests():
    assert set(COVERAGE) == set(CONFORMANCE), (
        "declared but untested: "
        + ", ".join(sorted(set(CONFORMANCE) - set(COVERAGE)))
        + "; mapped but not declared: "
        + ", ".join(sorted(set(COVERAGE) - set(CONFORMANCE)))
    )
    for cls, tests in COVERAGE.items():
        assert tests, cls
        for name in tests:
            module, func = name.split(".")
            mod = importlib.import_module(f"tests.{module}" if __package__ else module)
            assert callable(getattr(mod, func, None)), f"{cls}: {name} does not exist"


def test_conformance_endpoint_matches_the_declaration(client):
    assert client.get("/conformance").json()["conformsTo"] == list(CONFORMANCE)
