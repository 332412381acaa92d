package mmdbtest

// The demo databases of the example (written by example/gendb into
// example/demo.mmdb and example/demo-asn.mmdb), here so that tests can
// build databases of the very same content.
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
// Anything else, such as 127.0.0.1, is unknown. The first four networks are
// those of MaxMind's own test databases; the others are documentation
// ranges (RFC 5737, RFC 3849) and ASNs (RFC 5398), so that no real network
// is misplaced.

// DemoCountries returns the networks of the demo country database.
func DemoCountries() map[string]string {
	return map[string]string{
		"81.2.69.0/24":    "GB",
		"89.160.20.0/24":  "SE",
		"216.160.83.0/24": "US",
		"175.16.199.0/24": "CN",
		"192.0.2.0/24":    "FR",
		"198.51.100.0/24": "BR",
		"203.0.113.0/24":  "RU",
		"2001:db8::/48":   "JP",
		"2001:db8:1::/48": "DE",
	}
}

// DemoASNs returns the networks of the demo ASN database.
func DemoASNs() map[string]ASNRecord {
	return map[string]ASNRecord{
		"81.2.69.0/24":    {Number: 20712, Org: "Andrews & Arnold Ltd"},
		"89.160.20.0/24":  {Number: 29518, Org: "Bredband2 AB"},
		"216.160.83.0/24": {Number: 209, Org: "CenturyLink"},
		"175.16.199.0/24": {Number: 4837, Org: "China Unicom"},
		"192.0.2.0/24":    {Number: 64496, Org: "Documentation AS 64496"},
		"198.51.100.0/24": {Number: 64497, Org: "Documentation AS 64497"},
		"203.0.113.0/24":  {Number: 64498, Org: "Documentation AS 64498"},
		"2001:db8::/48":   {Number: 64499, Org: "Documentation AS 64499"},
		"2001:db8:1::/48": {Number: 64500, Org: "Documentation AS 64500"},
	}
}
