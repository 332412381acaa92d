package geodb

// The continent of every country, and the members of the European Union, for
// databases that give a country but not these (ip-location-db, IPinfo's
// country-only builds, a hand-given country_code field).
//
// countryContinents lists every code assigned in ISO 3166-1 alpha-2 (the 249
// codes of the ISO 3166 Maintenance Agency's list as of 2026-11-30, as
// Debian's iso-codes 4.x ships it), plus XK (Kosovo, a user-assigned code that
// MaxMind, DB-IP and GeoNames use), each with its continent as GeoNames'
// countryInfo.txt gives it (the source MaxMind's and DB-IP's continent codes
// come from): AF Africa, AN Antarctica, AS Asia, EU Europe, NA North America,
// OC Oceania, SA South America. A country across two continents has the one
// GeoNames gives it (RU, CY: EU; TR, AM, AZ, GE, KZ: AS; TL: OC).
var countryContinents = map[string]string{
	"AD": "EU", "AE": "AS", "AF": "AS", "AG": "NA", "AI": "NA", "AL": "EU", "AM": "AS", "AO": "AF",
	"AQ": "AN", "AR": "SA", "AS": "OC", "AT": "EU", "AU": "OC", "AW": "NA", "AX": "EU", "AZ": "AS",
	"BA": "EU", "BB": "NA", "BD": "AS", "BE": "EU", "BF": "AF", "BG": "EU", "BH": "AS", "BI": "AF",
	"BJ": "AF", "BL": "NA", "BM": "NA", "BN": "AS", "BO": "SA", "BQ": "NA", "BR": "SA", "BS": "NA",
	"BT": "AS", "BV": "AN", "BW": "AF", "BY": "EU", "BZ": "NA", "CA": "NA", "CC": "AS", "CD": "AF",
	"CF": "AF", "CG": "AF", "CH": "EU", "CI": "AF", "CK": "OC", "CL": "SA", "CM": "AF", "CN": "AS",
	"CO": "SA", "CR": "NA", "CU": "NA", "CV": "AF", "CW": "NA", "CX": "OC", "CY": "EU", "CZ": "EU",
	"DE": "EU", "DJ": "AF", "DK": "EU", "DM": "NA", "DO": "NA", "DZ": "AF", "EC": "SA", "EE": "EU",
	"EG": "AF", "EH": "AF", "ER": "AF", "ES": "EU", "ET": "AF", "FI": "EU", "FJ": "OC", "FK": "SA",
	"FM": "OC", "FO": "EU", "FR": "EU", "GA": "AF", "GB": "EU", "GD": "NA", "GE": "AS", "GF": "SA",
	"GG": "EU", "GH": "AF", "GI": "EU", "GL": "NA", "GM": "AF", "GN": "AF", "GP": "NA", "GQ": "AF",
	"GR": "EU", "GS": "AN", "GT": "NA", "GU": "OC", "GW": "AF", "GY": "SA", "HK": "AS", "HM": "AN",
	"HN": "NA", "HR": "EU", "HT": "NA", "HU": "EU", "ID": "AS", "IE": "EU", "IL": "AS", "IM": "EU",
	"IN": "AS", "IO": "AS", "IQ": "AS", "IR": "AS", "IS": "EU", "IT": "EU", "JE": "EU", "JM": "NA",
	"JO": "AS", "JP": "AS", "KE": "AF", "KG": "AS", "KH": "AS", "KI": "OC", "KM": "AF", "KN": "NA",
	"KP": "AS", "KR": "AS", "KW": "AS", "KY": "NA", "KZ": "AS", "LA": "AS", "LB": "AS", "LC": "NA",
	"LI": "EU", "LK": "AS", "LR": "AF", "LS": "AF", "LT": "EU", "LU": "EU", "LV": "EU", "LY": "AF",
	"MA": "AF", "MC": "EU", "MD": "EU", "ME": "EU", "MF": "NA", "MG": "AF", "MH": "OC", "MK": "EU",
	"ML": "AF", "MM": "AS", "MN": "AS", "MO": "AS", "MP": "OC", "MQ": "NA", "MR": "AF", "MS": "NA",
	"MT": "EU", "MU": "AF", "MV": "AS", "MW": "AF", "MX": "NA", "MY": "AS", "MZ": "AF", "NA": "AF",
	"NC": "OC", "NE": "AF", "NF": "OC", "NG": "AF", "NI": "NA", "NL": "EU", "NO": "EU", "NP": "AS",
	"NR": "OC", "NU": "OC", "NZ": "OC", "OM": "AS", "PA": "NA", "PE": "SA", "PF": "OC", "PG": "OC",
	"PH": "AS", "PK": "AS", "PL": "EU", "PM": "NA", "PN": "OC", "PR": "NA", "PS": "AS", "PT": "EU",
	"PW": "OC", "PY": "SA", "QA": "AS", "RE": "AF", "RO": "EU", "RS": "EU", "RU": "EU", "RW": "AF",
	"SA": "AS", "SB": "OC", "SC": "AF", "SD": "AF", "SE": "EU", "SG": "AS", "SH": "AF", "SI": "EU",
	"SJ": "EU", "SK": "EU", "SL": "AF", "SM": "EU", "SN": "AF", "SO": "AF", "SR": "SA", "SS": "AF",
	"ST": "AF", "SV": "NA", "SX": "NA", "SY": "AS", "SZ": "AF", "TC": "NA", "TD": "AF", "TF": "AN",
	"TG": "AF", "TH": "AS", "TJ": "AS", "TK": "OC", "TL": "OC", "TM": "AS", "TN": "AF", "TO": "OC",
	"TR": "AS", "TT": "NA", "TV": "OC", "TW": "AS", "TZ": "AF", "UA": "EU", "UG": "AF", "UM": "OC",
	"US": "NA", "UY": "SA", "UZ": "AS", "VA": "EU", "VC": "NA", "VE": "SA", "VG": "NA", "VI": "NA",
	"VN": "AS", "VU": "OC", "WF": "OC", "WS": "OC", "YE": "AS", "YT": "AF", "ZA": "AF", "ZM": "AF",
	"ZW": "AF",
	"XK": "EU",
}

// euMembers are the member states of the European Union as of 2026-11-30:
// 27 countries, unchanged since the United Kingdom left on 2020-02-01
// (source: european-union.europa.eu, "EU countries").
var euMembers = [...]string{
	"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
	"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}

// countryInfo is indexed by countryIndex: the continent (index into
// continentNames, +1; 0 = not a known country) and EU membership.
var countryInfo [26 * 26]struct {
	continent uint8
	eu        bool
}

var continentNames = [...]string{"AF", "AN", "AS", "EU", "NA", "OC", "SA"}

func init() {
	for cc, cont := range countryContinents {
		for i, n := range continentNames {
			if n == cont {
				countryInfo[countryIndex(cc)].continent = uint8(i + 1)
			}
		}
	}
	for _, cc := range euMembers {
		countryInfo[countryIndex(cc)].eu = true
	}
}

// countryIndex returns the index of a two-letter upper-case code, or -1.
func countryIndex(cc string) int {
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return -1
	}
	return int(cc[0]-'A')*26 + int(cc[1]-'A')
}

// IsCountry reports whether cc (upper case) is an assigned ISO 3166-1
// alpha-2 code, or XK (Kosovo).
func IsCountry(cc string) bool {
	i := countryIndex(cc)
	return i >= 0 && countryInfo[i].continent != 0
}

// ContinentOf returns the continent code (AF AN AS EU NA OC SA) of the
// country cc (ISO 3166-1 alpha-2, upper case), or "" for a code that is not
// assigned.
func ContinentOf(cc string) string {
	i := countryIndex(cc)
	if i < 0 || countryInfo[i].continent == 0 {
		return ""
	}
	return continentNames[countryInfo[i].continent-1]
}

// IsEU reports whether the ISO 3166-1 alpha-2 country code (upper case) is a
// member state of the European Union.
func IsEU(cc string) bool {
	i := countryIndex(cc)
	return i >= 0 && countryInfo[i].eu
}

// Countries returns every country code IsCountry accepts, sorted.
func Countries() []string {
	out := make([]string, 0, len(countryContinents))
	for i := range countryInfo {
		if countryInfo[i].continent != 0 {
			out = append(out, string([]byte{byte('A' + i/26), byte('A' + i%26)}))
		}
	}
	return out
}
