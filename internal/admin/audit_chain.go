package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ChainBreak is where an audit log's hash chain breaks, and why.
type ChainBreak struct {
	// File and Line (from 1) locate the first line that does not verify.
	File string
	Line int
	// Reason says what is wrong and what it means.
	Reason string
}

func (b *ChainBreak) Error() string { return fmt.Sprintf("%s:%d: %s", b.File, b.Line, b.Reason) }

// ChainResult is what VerifyAuditChain found in an intact chain.
type ChainResult struct {
	// Lines is how many lines verify.
	Lines int
	// Start is the prev of the first line: GenesisHash when the files
	// hold the log from its start, else the hash of a line rotated away.
	Start string
	// Head is the hash of the last line; record it elsewhere to notice
	// later that lines were cut from the end.
	Head string
}

// VerifyAuditChain checks the hash chain of the audit log files given
// oldest first (PATH.2 PATH.1 PATH), as one chain: every line must be a
// JSON object whose prev is the hash of the line before it, the first
// line of each file chaining from the last of the file before. The
// chain may start with any prev (older files may have been rotated
// away); its Start says which. It returns a *ChainBreak at the first
// line that does not verify, or another error when a file cannot be
// read. Empty files are skipped.
//
// A chain shows edits, deletions, insertions and reorderings of lines,
// and files given out of order or missing between others. It cannot show
// lines cut from the end, or the newest line edited: compare Head with
// one recorded earlier (the node logs it at each rotation).
func VerifyAuditChain(files []string) (ChainResult, error) {
	var res ChainResult
	var prevHash string // "" before the first line
	prevFile := ""
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return res, fmt.Errorf("audit log: %w", err)
		}
		err = verifyFile(f, path, prevFile, &prevHash, &res)
		f.Close()
		if err != nil {
			return res, err
		}
		if res.Lines > 0 {
			prevFile = path
		}
	}
	res.Head = prevHash
	return res, nil
}

// chainPrefix is how every chained line starts, before the hash.
const chainPrefix = `{"prev":"sha256:`

func verifyFile(r io.Reader, path, prevFile string, prevHash *string, res *ChainResult) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF && len(line) == 0 {
			return nil
		}
		brk := func(format string, args ...any) error {
			return &ChainBreak{File: path, Line: n, Reason: fmt.Sprintf(format, args...)}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			return brk("the line is longer than %d bytes: is this an audit log?", maxAuditLine)
		case err == io.EOF:
			return brk("the line is cut short (the file does not end in a newline): the file was truncated, or the node stopped in the middle of a write")
		case err != nil:
			return fmt.Errorf("audit log %s: reading line %d: %w", path, n, err)
		}
		line = line[:len(line)-1]
		if !bytes.HasPrefix(line, []byte(chainPrefix)) || len(line) < len(chainPrefix)+64+2 || string(line[len(chainPrefix)+64:len(chainPrefix)+66]) != `",` {
			return brk(`the line does not start with {"prev":"sha256:<64 hex digits>",: it was edited, or it is not from a chained audit log`)
		}
		prev := string(line[len(`{"prev":"`) : len(chainPrefix)+64])
		if !json.Valid(line) {
			return brk("the line is not valid JSON: it was edited")
		}
		switch {
		case *prevHash == "":
			res.Start = prev
		case prev != *prevHash && n == 1:
			return brk("the file's first line does not chain from the last line of %s (its prev is %s, that line's hash %s): give the files oldest first (PATH.2 PATH.1 PATH), and check that none is missing between them",
				prevFile, short(prev), short(*prevHash))
		case prev != *prevHash && prev == GenesisHash:
			return brk("the line starts a new chain in the middle of the log (its prev is the genesis value): the lines before it were replaced, or the log was restarted from an empty file")
		case prev != *prevHash:
			return brk("the line's prev (%s) is not the hash of the line before it (%s): the line before was changed, or lines were deleted, inserted or reordered here",
				short(prev), short(*prevHash))
		}
		sum := sha256.Sum256(line)
		*prevHash = "sha256:" + hex.EncodeToString(sum[:])
		res.Lines++
	}
}

// readLine reads one line with its '\n', at most maxAuditLine bytes.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxAuditLine {
			return line, bufio.ErrBufferFull
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return line, err
	}
}

// short abbreviates a "sha256:HEX" hash for messages.
func short(h string) string {
	if len(h) > len("sha256:")+12 {
		return h[:len("sha256:")+12] + "..."
	}
	return h
}
