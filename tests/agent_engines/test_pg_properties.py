"""The PostgreSQL database properties a clone recreates: list settings split like pg_dump does, every
value a psql variable (never spliced into SQL), names checked, over-long texts cut and not compared."""

from __future__ import annotations

import pytest

from backup_agent.engines import pg_properties

pytestmark = pytest.mark.unit


def test_list_settings_are_split_like_pg_dump_splits_them() -> None:
    assert pg_properties.split_list('app, "My Schema", public') == ["app", "My Schema", "public"]
    assert pg_properties.split_list('"a,b", "say ""hi"""') == ["a,b", 'say "hi"']
    assert pg_properties.split_list("") == []


def test_values_travel_as_psql_variables_and_odd_setting_names_are_skipped_in_words() -> None:
    sql, variables, skipped = pg_properties.describe_sql(
        {
            "comment": "it's; DROP DATABASE x",
            "settings": ['search_path=app, "My Schema"', "app.tenant=7", 'x"; DROP=1', "novalue"],
        }
    )

    assert "DROP" not in sql
    assert "COMMENT ON DATABASE :\"dbname\" IS :'comment';" in sql
    assert "ALTER DATABASE :\"dbname\" SET \"search_path\" TO :'s0_0', :'s0_1';" in sql
    assert 'ALTER DATABASE :"dbname" SET "app"."tenant" TO :\'s1_0\';' in sql
    assert variables["comment"] == "it's; DROP DATABASE x"
    assert (variables["s0_0"], variables["s0_1"], variables["s1_0"]) == ("app", "My Schema", "7")
    assert len(skipped) == 2


def test_create_uses_the_source_provider_and_locale() -> None:
    sql, variables = pg_properties.create_sql(
        {"encoding": "UTF8", "locale_provider": "icu", "collate": "C.UTF-8", "ctype": "C.UTF-8", "locale": "de-DE"}
    )

    assert sql == (
        "CREATE DATABASE :\"dbname\" TEMPLATE template0 ENCODING :'encoding' LC_COLLATE :'collate'"
        " LC_CTYPE :'ctype' LOCALE_PROVIDER icu ICU_LOCALE :'locale';"
    )
    assert variables["locale"] == "de-DE"
    assert pg_properties.create_sql({})[0] == 'CREATE DATABASE :"dbname" TEMPLATE template0;'


def test_texts_longer_than_the_manifest_allows_are_cut_and_not_compared() -> None:
    properties = pg_properties.parse('{"encoding": "UTF8", "row": {}, "comment": "' + "x" * 5000 + '"}')

    assert len(properties["comment"]) == 1024
    assert properties["cut"] == ["comment"]
    restored = {"encoding": "UTF8", "locale_provider": "libc", "comment": "y" * 5000}
    assert pg_properties.differences(properties, restored) == []
    assert pg_properties.differences(properties, {**restored, "encoding": "LATIN1"}) == [
        "encoding 'LATIN1' (the source had 'UTF8')"
    ]
