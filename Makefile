# Targets an operator or developer runs; the README explains each one.
GO ?= go
BIN := bin

.PHONY: build test vet fuzz demo lab-deps lab-engine-start lab-engine-stop clean

build:
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

# The README's test command. Tests that need the lab's Docker engine skip
# without one, unless PASUPGRADE_REQUIRE_LAB=1 (CI) turns a skip into a failure.
test: vet
	$(GO) test -race -count=1 -timeout 30m ./...
	$(MAKE) fuzz

# A short run of the archive validator's fuzz target on top of its seed corpus.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzValidate$$' -fuzztime 20s ./backup

# Upgrades a simulated single-node lab from 4.8.0 to 4.9.0 and removes it again.
demo:
	scripts/demo.sh

lab-deps:
	scripts/lab-engine.sh deps

lab-engine-start:
	@scripts/lab-engine.sh start

lab-engine-stop:
	scripts/lab-engine.sh stop

clean:
	rm -rf $(BIN)
