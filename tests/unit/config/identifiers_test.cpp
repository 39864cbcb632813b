// National structure identifiers (DOMAIN.md "Identifiers of a site").
#include "orgproxy/config/identifiers.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace orgproxy::config {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(Luhn, accepts_valid_keys_and_refuses_one_changed_digit) {
  EXPECT_TRUE(luhn_valid("12345678200002"));
  EXPECT_FALSE(luhn_valid("12345678200003"));
  EXPECT_TRUE(luhn_valid("99700270616"));
  EXPECT_FALSE(luhn_valid("99700270617"));
  EXPECT_FALSE(luhn_valid(""));
  EXPECT_FALSE(luhn_valid("1234a"));
}

TEST(Rpps, eleven_digits_with_a_luhn_key) {
  EXPECT_TRUE(rpps_valid("99700270616"));
  EXPECT_TRUE(rpps_valid("98765432103"));
  EXPECT_FALSE(rpps_valid("98765432104"));
  EXPECT_FALSE(rpps_valid("9876543210"));
  EXPECT_FALSE(rpps_valid("898765432103"));
}

struct Valid {
  const char* id;
  StructureIdType type;
};

class ValidStructureIds : public ::testing::TestWithParam<Valid> {};

TEST_P(ValidStructureIds, are_accepted_with_their_type_and_no_warning) {
  const auto r = check_structure_id(GetParam().id);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.type, GetParam().type);
  EXPECT_THAT(r.warning, IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    AllTypes, ValidStructureIds,
    ::testing::Values(Valid{"0751234567", StructureIdType::adeli}, Valid{"0891234567", StructureIdType::adeli},
                      Valid{"1750000010", StructureIdType::finess},  // all digits, key ok
                      Valid{"10B0152872", StructureIdType::finess},  // letter seen in a real certificate
                      Valid{"12A0000001", StructureIdType::finess},  // Corsica
                      Valid{"2123456782", StructureIdType::siren}, Valid{"312345678200002", StructureIdType::siret},
                      Valid{"318751275100020", StructureIdType::siret},
                      Valid{"335600000010000", StructureIdType::siret},  // La Poste: digit sum 15
                      Valid{"335600000000048", StructureIdType::siret},  // La Poste head office: Luhn
                      Valid{"498765432103017", StructureIdType::rpps_rang},
                      Valid{"499700270616011", StructureIdType::rpps_rang}));

struct Invalid {
  const char* id;
  const char* message;
};

class InvalidStructureIds : public ::testing::TestWithParam<Invalid> {};

TEST_P(InvalidStructureIds, are_refused_saying_why) {
  ASSERT_TRUE(check_structure_id("312345678200002").ok);  // control
  const auto r = check_structure_id(GetParam().id);
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.error, HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    AllRules, InvalidStructureIds,
    ::testing::Values(
        Invalid{"12345678200002", "is a bare SIRET (14 digits): write the full structure identifier '312345678200002'"},
        Invalid{"98765432103", "is a bare RPPS (11 digits): write the full structure identifier '498765432103NNN'"},
        Invalid{"123456782", "write '2123456782' for a SIREN or '1123456782' for a FINESS"},
        Invalid{"12345678200003", "has 14 digits like a bare SIRET, but its Luhn key fails"},
        Invalid{"98765432104", "has 11 digits like a bare RPPS, but its Luhn key fails"},
        Invalid{"312345678200003", "SIRET 12345678200003 fails its Luhn check"},
        Invalid{"335600000010001", "fails La Poste's check (digit sum divisible by 5)"},
        Invalid{"31234567820000", "must have 15 characters (3 + 14-digit SIRET), found 14"},
        Invalid{"498765432104017", "RPPS 98765432104 fails its Luhn check"},
        Invalid{"4987654321030170", "must have 15 characters (4 + 11-digit RPPS + 3-digit rang), found 16"},
        Invalid{"2123456783", "SIREN 123456783 fails its Luhn check"},
        Invalid{"075123456", "must have 10 characters (0 + 9-digit ADELI)"},
        Invalid{"07512345A7", "an ADELI number has digits only"},
        Invalid{"10b0152872", "FINESS letters are upper case"},
        Invalid{"1750A00010", "letters only in its first two characters"},
        Invalid{"175000001000", "must have 10 characters (1 + 9-character FINESS), found 12"},
        Invalid{"3.1234567890e14", "looks like a number"}, Invalid{"312345678200002.0", "looks like a number"},
        Invalid{"-312345678200002", "looks like a number"}, Invalid{"3 12345678200002", "contains ' '"},
        Invalid{"899700270616", "is a person's identifier (8 + RPPS)"},
        Invalid{"512345678200002", "not a structure type digit"}, Invalid{"", "empty"}));

TEST(StructureId, finess_whose_key_does_not_match_is_accepted_with_a_warning) {
  const auto r = check_structure_id("1750000011");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.type, StructureIdType::finess);
  EXPECT_THAT(r.warning, HasSubstr("FINESS check digit does not match"));
  // Positive control: the same FINESS with its right key draws no warning.
  EXPECT_THAT(check_structure_id("1750000010").warning, IsEmpty());
}

TEST(StructureId, finess_with_letters_is_not_key_checked) {
  const auto r = check_structure_id("12B0000000");
  EXPECT_TRUE(r.ok);
  EXPECT_THAT(r.warning, IsEmpty());
}

}  // namespace
}  // namespace orgproxy::config
