from kit.protogen import stale_files


def test_generated_code_matches_the_protos():
    assert stale_files() == [], "run ./reserva protos and commit protos/gen"
