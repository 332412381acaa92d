// Command gendb writes the small demo geo databases of the example, in the
// layouts of MaxMind's GeoLite2-Country and GeoLite2-ASN, so that the example
// runs without a MaxMind account. `make example-assets` runs it.
//
//	go run ./example/gendb -o example/demo.mmdb -asn example/demo-asn.mmdb
//
// What the databases say (the table is mmdbtest.DemoCountries and
// mmdbtest.DemoASNs; anything else, such as 127.0.0.1, is unknown):
//
//	network           country        continent  ASN    organization
//	81.2.69.0/24      GB             EU         20712  Andrews & Arnold Ltd
//	89.160.20.0/24    SE (EU member) EU         29518  Bredband2 AB
//	216.160.83.0/24   US             NA         209    CenturyLink
//	175.16.199.0/24   CN             AS         4837   China Unicom
//	192.0.2.0/24      FR (EU member) EU         64496  Documentation AS 64496
//	198.51.100.0/24   BR             SA         64497  Documentation AS 64497
//	203.0.113.0/24    RU             EU         64498  Documentation AS 64498
//	2001:db8::/48     JP             AS         64499  Documentation AS 64499
//	2001:db8:1::/48   DE (EU member) EU         64500  Documentation AS 64500
//
// The first four networks are those of MaxMind's own test databases; the
// others are documentation ranges (RFC 5737, RFC 3849) and ASNs (RFC 5398),
// so that no real network is misplaced.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/caddy-edge/edge/internal/mmdbtest"
)

func main() {
	country := flag.String("o", "", "write the country database (GeoLite2-Country layout) to this file")
	asn := flag.String("asn", "", "write the ASN database (GeoLite2-ASN layout) to this file")
	flag.Parse()
	if *country == "" && *asn == "" {
		fmt.Fprintln(os.Stderr, "usage: gendb [-o country.mmdb] [-asn asn.mmdb]")
		os.Exit(2)
	}
	if *country != "" {
		if err := write(*country, mmdbtest.BuildCountry(mmdbtest.DemoCountries())); err != nil {
			fmt.Fprintln(os.Stderr, "gendb:", err)
			os.Exit(1)
		}
	}
	if *asn != "" {
		if err := write(*asn, mmdbtest.BuildASN(mmdbtest.DemoASNs())); err != nil {
			fmt.Fprintln(os.Stderr, "gendb:", err)
			os.Exit(1)
		}
	}
}

// write replaces path atomically, so that a running Caddy reloading the
// file never reads it half-written.
func write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".gendb-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
