# fobkit: `make demo` runs the line end to end, `make test` the whole suite.
# Every target does its own set-up (Debian packages + npm ci) on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help
NODE_BUILD := build/node/.built
IMAGE := build/firmware/fobkit.lua
TS_SOURCES := $(shell find core firmware protocol host hil tools -name '*.ts' -o -name '*.cjs' 2>/dev/null)

.PHONY: help setup firmware host test bench fuzz demo clean

help:
	@echo "make demo      run the whole line on emulated keyfobs"
	@echo "make test      run the whole test suite"
	@echo "make firmware  check the TS subset and build $(IMAGE)"
	@echo "make bench     measure and write bench/results/*.json"
	@echo "make fuzz      the long protocol fuzz run"

setup:
	@scripts/setup.sh

$(NODE_BUILD): $(TS_SOURCES) tsconfig.node.json tsconfig.web.json package-lock.json
	@npx tsc -p tsconfig.node.json
	@npx tsc -p tsconfig.web.json
	@touch $@

host: setup $(NODE_BUILD)

firmware: host
	@node build/node/tools/build-firmware.js

test: firmware
	@npx vitest run

bench: firmware
	@node build/node/tools/bench.js

fuzz: firmware
	@FOBKIT_FUZZ_LONG=1 npx vitest run test/fuzz

demo: firmware
	@node build/node/tools/demo.js

clean:
	rm -rf build
