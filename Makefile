# The two commands README.md gives: `make demo` (main job) and `make test` (all tests).
JOBS ?= 2
.PHONY: deps build build-asan test test-unit demo fuzz bench clean

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON >/dev/null
	cmake --build build -j$(JOBS)

build-asan:
	cmake -S . -B build-asan -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DSLUICE_WERROR=ON >/dev/null
	cmake --build build-asan -j$(JOBS)

FUZZ_SECONDS ?= 20

# Everything: deps, normal + sanitizer builds, a short libFuzzer run of every parser, the unit
# tests under ASan+UBSan, then every unit, e2e and chaos test on the normal build (ctest's
# summary is the last thing printed).
test: deps build build-asan
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)
	cd build-asan && ctest --output-on-failure -L unit
	cd build && ctest --output-on-failure

demo: deps build
	bash scripts/demo.sh

fuzz:
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz
